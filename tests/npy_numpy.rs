//! `.npy` files as NumPy reads and writes them: ours load in `numpy.load` with the same shape,
//! dtype and values, and NumPy's (v1 and v2 headers) load in ours.

mod common;

use std::process::Command;

use common::*;
use llava::npy;

fn run_python(code: &str, dir: &std::path::Path) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .arg(dir)
        .output()
        .expect("running Python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn numpy_reads_ours() {
    let dir = temp_dir();
    let f: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    npy::write(dir.path().join("f.npy"), &[2, 3, 4], &f).unwrap();
    npy::write(
        dir.path().join("i.npy"),
        &[5],
        &[1i32, -2, 3, i32::MAX, i32::MIN],
    )
    .unwrap();
    npy::write(dir.path().join("l.npy"), &[1, 2], &[i64::MIN, 9i64]).unwrap();
    let printed = run_python(
        "import sys, numpy as np\n\
         d = sys.argv[1]\n\
         for n in 'fil':\n\
         \x20   a = np.load(f'{d}/{n}.npy')\n\
         \x20   print(a.dtype.str, a.shape, a.ravel().tolist())\n",
        dir.path(),
    );
    let lines: Vec<&str> = printed.lines().collect();
    let expected_f: Vec<String> = f.iter().map(|v| format!("{v:?}")).collect();
    assert_eq!(
        lines[0],
        format!("<f4 (2, 3, 4) [{}]", expected_f.join(", "))
    );
    assert_eq!(lines[1], "<i4 (5,) [1, -2, 3, 2147483647, -2147483648]");
    assert_eq!(lines[2], "<i8 (1, 2) [-9223372036854775808, 9]");
}

#[test]
fn ours_reads_numpy() {
    let dir = temp_dir();
    run_python(
        "import sys, numpy as np\n\
         from numpy.lib import format as F\n\
         d = sys.argv[1]\n\
         np.save(f'{d}/f.npy', (np.arange(12, dtype=np.float32) / 7).reshape(3, 4))\n\
         np.save(f'{d}/s.npy', np.array(5, dtype=np.int64))\n\
         with open(f'{d}/v2.npy', 'wb') as fh:\n\
         \x20   a = np.arange(6, dtype=np.int32).reshape(2, 3)\n\
         \x20   F.write_array(fh, a, version=(2, 0))\n",
        dir.path(),
    );
    let f: npy::NpyArray<f32> = npy::read(dir.path().join("f.npy")).unwrap();
    assert_eq!(f.shape, vec![3, 4]);
    let expected: Vec<f32> = (0..12).map(|i| i as f32 / 7.0).collect();
    assert_eq!(f.data, expected);
    let s: npy::NpyArray<i64> = npy::read(dir.path().join("s.npy")).unwrap();
    assert_eq!((s.shape.len(), s.data.as_slice()), (0, &[5i64][..]));
    let v2: npy::NpyArray<i32> = npy::read(dir.path().join("v2.npy")).unwrap();
    assert_eq!((v2.shape, v2.data), (vec![2, 3], vec![0, 1, 2, 3, 4, 5]));
}
