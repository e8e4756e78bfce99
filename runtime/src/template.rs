//! Compose's variable substitution (compose-spec's "Interpolation"), for compose files and env
//! files: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}` (set and not empty),
//! `${VAR+alternative}` (set), `$$` for a `$`. Defaults, errors and alternatives may hold
//! substitutions themselves (`${A:-${B}}`).

/// The text with its variables substituted, and the variables it found unset (each one an
/// empty string, which Compose warns about).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Substituted {
    pub text: String,
    pub unset: Vec<String>,
}

/// What a `$` not followed by a name, `{` or `$` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoneDollar {
    /// An error, as in compose files (`$(cmd)` must be written `$$(cmd)`).
    Refused,
    /// A literal `$`, as in env files.
    Kept,
}

/// Substitutes `text`'s variables from `lookup`; the error says what is wrong in words.
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    lone: LoneDollar,
) -> Result<Substituted, String> {
    let mut out = Substituted::default();
    expand(text, lookup, lone, &mut out).map_err(|why| match why {
        Why::Format => format!(
            "invalid interpolation format in {text:?}: you may need to escape any $ with another $"
        ),
        Why::Required(message) => message,
    })?;
    Ok(out)
}

enum Why {
    Format,
    Required(String),
}

fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    lone: LoneDollar,
    out: &mut Substituted,
) -> Result<(), Why> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.text.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = closing_brace(inner).ok_or(Why::Format)?;
            braced(&inner[..end], lookup, lone, out)?;
            rest = &inner[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                if lone == LoneDollar::Refused {
                    return Err(Why::Format);
                }
                out.text.push('$');
            } else {
                variable(&after[..len], lookup, out);
            }
            rest = &after[len..];
        }
    }
    out.text.push_str(rest);
    Ok(())
}

/// `$NAME` or `${NAME}`: its value, or nothing and a note that it is unset.
fn variable(name: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut Substituted) {
    match lookup(name) {
        Some(value) => out.text.push_str(&value),
        None => out.unset.push(name.to_string()),
    }
}

/// The length of the variable name at the start of `text`: `[A-Za-z_][A-Za-z0-9_]*`.
fn name_len(text: &str) -> usize {
    let mut len = 0;
    for (i, c) in text.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// Where the `}` that closes a `${` is, counting the `${` inside it.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 1;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// What is between `${` and `}`: a name, then nothing or an operator and its word.
fn braced(
    expr: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    lone: LoneDollar,
    out: &mut Substituted,
) -> Result<(), Why> {
    let len = name_len(expr);
    if len == 0 {
        return Err(Why::Format);
    }
    let (name, op) = expr.split_at(len);
    if op.is_empty() {
        variable(name, lookup, out);
        return Ok(());
    }
    let value = lookup(name);
    let set_and_not_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (operator, word) = match op {
        _ if op.starts_with(":-") || op.starts_with(":?") || op.starts_with(":+") => op.split_at(2),
        _ if op.starts_with(['-', '?', '+']) => op.split_at(1),
        _ => return Err(Why::Format),
    };
    let use_word = match operator {
        ":-" => !set_and_not_empty,
        "-" => value.is_none(),
        ":+" => set_and_not_empty,
        "+" => value.is_some(),
        ":?" | "?" => {
            let missing = if operator == ":?" {
                !set_and_not_empty
            } else {
                value.is_none()
            };
            if missing {
                let mut message = Substituted::default();
                expand(word, lookup, lone, &mut message)?;
                let why = match message.text.as_str() {
                    "" => format!("required variable {name} is missing a value"),
                    text => format!("required variable {name} is missing a value: {text}"),
                };
                return Err(Why::Required(why));
            }
            false
        }
        _ => unreachable!("split above"),
    };
    if use_word {
        expand(word, lookup, lone, out)?;
    } else if !operator.ends_with('+') {
        out.text.push_str(value.as_deref().unwrap_or(""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.2".into()),
            _ => None,
        }
    }

    fn sub(text: &str) -> Result<Substituted, String> {
        substitute(text, &env, LoneDollar::Refused)
    }

    #[test]
    fn composes_operators() {
        let cases = [
            ("$HOME/x ${HOME}/y", "/home/u/x /home/u/y"),
            (
                "${MISSING:-def} ${EMPTY:-def} ${EMPTY-def} ${MISSING-def}",
                "def def  def",
            ),
            (
                "${HOME:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${MISSING+alt}",
                "alt  alt ",
            ),
            ("${HOME:?boom} ${EMPTY?boom}", "/home/u "),
            (
                "app:${TAG:-latest} $$HOME $${HOME}",
                "app:1.2 $HOME ${HOME}",
            ),
            ("${MISSING:-${TAG}} ${MISSING:-a${MISSING2:-b}c}", "1.2 abc"),
            ("price: 5$$", "price: 5$"),
            ("no variables", "no variables"),
            ("${HOME}${TAG}", "/home/u1.2"),
            ("$TAG_x", ""),
        ];
        for (text, want) in cases {
            assert_eq!(sub(text).unwrap().text, want, "{text}");
        }
    }

    #[test]
    fn unset_variables_are_reported_once_each_use_and_defaults_are_not() {
        let got = sub("$A ${B} ${C:-x} ${D-x} ${E:+x}").unwrap();
        assert_eq!(got.text, "  x x ");
        assert_eq!(got.unset, ["A", "B"]);
    }

    #[test]
    fn required_and_malformed() {
        assert_eq!(
            sub("${MISSING:?set it in .env}").unwrap_err(),
            "required variable MISSING is missing a value: set it in .env"
        );
        assert_eq!(
            sub("${EMPTY:?}").unwrap_err(),
            "required variable EMPTY is missing a value"
        );
        assert!(sub("${EMPTY?}").is_ok());
        for bad in [
            "$(date)",
            "cost $5",
            "${",
            "${HOME",
            "${1A}",
            "${HOME#x}",
            "${}",
        ] {
            let err = sub(bad).unwrap_err();
            assert!(
                err.starts_with("invalid interpolation format"),
                "{bad}: {err}"
            );
        }
        let kept = substitute("$(date) $! ${HOME}", &env, LoneDollar::Kept).unwrap();
        assert_eq!(kept.text, "$(date) $! /home/u");
    }
}
