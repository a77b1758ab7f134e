//! A job's command line as people type it and as it is shown: POSIX-shell-style words (quotes, escapes), so
//! that `bundle v --override "reviewed by legal"` means the same in the dashboard as on the command line.
//! Nothing is expanded: no variables, globs or command substitution.

/// Why a command line cannot be split into words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A quote opened at this character position is never closed.
    #[error("unclosed {quote} quote starting at character {at}")]
    Unclosed {
        /// `'` or `"`.
        quote: char,
        /// 1-based position of the opening quote.
        at: usize,
    },
    /// The line ends with a lone backslash.
    #[error("the command line ends with a lone backslash")]
    TrailingBackslash,
}

/// Splits a command line into words the way a POSIX shell does: whitespace separates words; `'…'` keeps
/// everything literally; `"…"` keeps everything but `\"`, `\\`, `\$` and `` \` ``, which lose their backslash;
/// outside quotes a backslash keeps the next character literally. Adjacent quoted and plain parts form one
/// word (`--name="a b"` is one word).
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, x)) => w.push(x),
                        None => return Err(SplitError::Unclosed { quote: '\'', at: i + 1 }),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, x @ ('"' | '\\' | '$' | '`'))) => {
                                w.push(x);
                                chars.next();
                            }
                            Some(_) => w.push('\\'),
                            None => return Err(SplitError::Unclosed { quote: '"', at: i + 1 }),
                        },
                        Some((_, x)) => w.push(x),
                        None => return Err(SplitError::Unclosed { quote: '"', at: i + 1 }),
                    }
                }
            }
            '\\' => match chars.next() {
                Some((_, x)) => word.get_or_insert_with(String::new).push(x),
                None => return Err(SplitError::TrailingBackslash),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Quotes one word so that [`split`] gives it back: plain words stay as they are, others are single-quoted
/// (a `'` inside becomes `'\''`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins words into one command line that [`split`] turns back into the same words.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn quotes_and_escapes_split_as_a_shell_does() {
        assert_eq!(
            split(r#"bundle v --override "reviewed by legal""#).unwrap(),
            words(&["bundle", "v", "--override", "reviewed by legal"])
        );
        assert_eq!(split("  a   b\tc\n").unwrap(), words(&["a", "b", "c"]));
        assert_eq!(split(r#"--name="a b"c 'x y' it\'s"#).unwrap(), words(&["--name=a bc", "x y", "it's"]));
        assert_eq!(split(r#""say \"hi\" \n""#).unwrap(), words(&[r#"say "hi" \n"#]));
        assert_eq!(split(r#"'' """#).unwrap(), words(&["", ""]));
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        assert_eq!(split("a 'b").unwrap_err(), SplitError::Unclosed { quote: '\'', at: 3 });
        assert_eq!(split(r#"a "b"#).unwrap_err(), SplitError::Unclosed { quote: '"', at: 3 });
        assert_eq!(split(r"a \").unwrap_err(), SplitError::TrailingBackslash);
    }

    #[test]
    fn joined_words_split_back_to_the_same_words() {
        for w in [
            words(&["bundle", "v", "--override", "reviewed by legal"]),
            words(&["x", "it's", "", "a\"b", "$HOME", "tab\there", "--lora-targets=q_proj,v_proj"]),
        ] {
            let line = join(&w);
            assert_eq!(split(&line).unwrap(), w, "{line}");
        }
        assert_eq!(join(&["train", "rm", "--steps", "3"]), "train rm --steps 3");
    }
}
