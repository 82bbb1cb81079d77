//! Cutting a text around the special tokens written in it.

/// A piece of the input: plain text, or a special token (its id and its byte length in the text).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Special(u32, usize),
}

/// Splits `text` at every occurrence of a token of `specials` (sorted longest first, so that
/// the longest match at a position wins), scanning left to right.
pub(crate) fn split<'a>(text: &'a str, specials: &[(String, u32)]) -> Vec<Fragment<'a>> {
    let mut out = Vec::new();
    if specials.is_empty() {
        if !text.is_empty() {
            out.push(Fragment::Text(text));
        }
        return out;
    }
    let bytes = text.as_bytes();
    let mut start = 0; // start of the pending text
    let mut i = 0;
    while i < bytes.len() {
        // Every special token starts with a non-continuation byte; check only char starts.
        let found = if text.is_char_boundary(i) {
            specials
                .iter()
                .find(|(s, _)| bytes[i..].starts_with(s.as_bytes()))
        } else {
            None
        };
        match found {
            Some((s, id)) => {
                if start < i {
                    out.push(Fragment::Text(&text[start..i]));
                }
                out.push(Fragment::Special(*id, s.len()));
                i += s.len();
                start = i;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(Fragment::Text(&text[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_special_wins_and_text_between_is_kept() {
        let specials = vec![
            ("<image>".to_string(), 9),
            ("<s>".to_string(), 1),
            ("<".to_string(), 5),
        ];
        let f = split("a<s><image>é<", &specials);
        assert_eq!(
            f,
            [
                Fragment::Text("a"),
                Fragment::Special(1, 3),
                Fragment::Special(9, 7),
                Fragment::Text("é"),
                Fragment::Special(5, 1)
            ]
        );
        assert_eq!(split("", &specials), []);
        assert_eq!(split("xy", &[]), [Fragment::Text("xy")]);
    }
}
