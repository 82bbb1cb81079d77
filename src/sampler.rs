//! Choosing the next token from logits, in llama.cpp's order of the sampler chain:
//! repetition penalty (last N tokens) → top-k → top-p → min-p → temperature → draw (seeded).
//! A temperature ≤ 0 is greedy: the arg-max after the penalty (the first one on ties, like
//! llama.cpp and `torch.argmax`).

/// Sampling settings; each filter is off at its neutral value.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// ≤ 0: greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0: off.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1: off.
    pub top_p: f32,
    /// Keep tokens at least `min_p` times as likely as the most likely; 0: off.
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this; 1: off.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at (0: none).
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerParams {
    /// llama.cpp's defaults.
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            ..SamplerParams::default()
        }
    }
}

/// A sampler with its random state and the recent tokens.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: u64,
    recent: std::collections::VecDeque<u32>,
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Sampler {
        Sampler {
            rng: params.seed ^ 0x5DEE_CE66_D1CE_4E5B,
            recent: std::collections::VecDeque::new(),
            params,
        }
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token of the context (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// splitmix64, then a uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next token from `logits` (one per vocabulary entry).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        let mut logits = logits.to_vec();
        if p.repeat_penalty != 1.0 {
            let mut seen = std::collections::HashSet::new();
            for &t in &self.recent {
                if seen.insert(t)
                    && let Some(l) = logits.get_mut(t as usize)
                {
                    *l = if *l <= 0.0 {
                        *l * p.repeat_penalty
                    } else {
                        *l / p.repeat_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(&logits);
        }
        // Candidates sorted by logit, descending (ties by id, for determinism).
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if cand.is_empty() {
            return 0;
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if p.top_k > 0 {
            cand.truncate(p.top_k);
        }
        if p.top_p < 1.0 {
            let probs = softmax(&cand);
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= f64::from(p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            // p_i ≥ min_p · p_max  ⇔  logit_i ≥ logit_max + ln(min_p)
            let threshold = cand[0].1 + p.min_p.ln();
            let keep = cand.iter().take_while(|c| c.1 >= threshold).count();
            cand.truncate(keep.max(1));
        }
        for c in &mut cand {
            c.1 /= p.temperature;
        }
        let probs = softmax(&cand);
        let r = self.uniform();
        let mut cum = 0.0;
        for (c, pr) in cand.iter().zip(&probs) {
            cum += pr;
            if r < cum {
                return c.0;
            }
        }
        cand[cand.len() - 1].0
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(cand: &[(u32, f32)]) -> Vec<f64> {
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = cand.iter().map(|c| f64::from(c.1 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(params: SamplerParams, logits: &[f32], n: usize) -> Vec<usize> {
        let mut s = Sampler::new(params);
        let mut c = vec![0; logits.len()];
        for _ in 0..n {
            c[s.sample(logits) as usize] += 1;
        }
        c
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_penalty_applies_first() {
        let mut s = Sampler::new(SamplerParams::greedy());
        assert_eq!(s.sample(&[0.0, 3.0, 3.0, 1.0]), 1);
        let mut s = Sampler::new(SamplerParams {
            repeat_penalty: 2.0,
            ..SamplerParams::greedy()
        });
        s.accept(1);
        s.accept(1); // counted once, as llama.cpp's repeat penalty does
        // 3.0 / 2 = 1.5 < 2.0
        assert_eq!(s.sample(&[0.0, 3.0, 2.0, -1.0]), 2);
        // Negative logits are multiplied: -1 → -2, so token 0 (−1.5) beats token 3.
        s.accept(3);
        assert_eq!(s.sample(&[-1.5, -9.0, -9.0, -1.0]), 0);
    }

    #[test]
    fn filters_keep_the_expected_sets() {
        let logits = [2.0f32, 1.0, 0.0, -1.0, -5.0];
        let base = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 7,
        };
        let c = counts(
            SamplerParams {
                top_k: 2,
                ..base.clone()
            },
            &logits,
            2000,
        );
        assert!(
            c[0] > 0 && c[1] > 0 && c[2..].iter().all(|&x| x == 0),
            "{c:?}"
        );
        // Probabilities ≈ .644 .237 .087 .032 .0006: top-p 0.85 keeps 2 tokens, 0.9 keeps 3.
        let c = counts(
            SamplerParams {
                top_p: 0.85,
                ..base.clone()
            },
            &logits,
            2000,
        );
        assert!(c[2..].iter().all(|&x| x == 0), "{c:?}");
        let c = counts(
            SamplerParams {
                top_p: 0.9,
                ..base.clone()
            },
            &logits,
            4000,
        );
        assert!(c[2] > 0 && c[3..].iter().all(|&x| x == 0), "{c:?}");
        // min-p 0.1: keeps p ≥ 0.0644 → tokens 0, 1, 2.
        let c = counts(
            SamplerParams {
                min_p: 0.1,
                ..base.clone()
            },
            &logits,
            4000,
        );
        assert!(c[2] > 0 && c[3..].iter().all(|&x| x == 0), "{c:?}");
        // Unfiltered frequencies follow the softmax.
        let n = 20000;
        let c = counts(base.clone(), &logits, n);
        let p0 = c[0] as f64 / n as f64;
        assert!((p0 - 0.6439).abs() < 0.02, "{p0}");
        // Low temperature sharpens.
        let c = counts(
            SamplerParams {
                temperature: 0.25,
                ..base.clone()
            },
            &logits,
            2000,
        );
        assert!(c[0] as f64 / 2000.0 > 0.95, "{c:?}");
        // Same seed, same draws.
        assert_eq!(counts(base.clone(), &logits, 50), counts(base, &logits, 50));
    }
}
