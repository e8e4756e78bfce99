//! Environment files (`forge run --env-file`, compose's `env_file`) in Docker Compose's format
//! (docs.docker.com/compose/env-file): `KEY=VALUE` lines, `#` comments and blank lines,
//! an optional `export `, values unquoted (trimmed, ` #` starts a comment), in single quotes
//! (literal) or in double quotes (`\n`, `\t`, `\r`, `\\`, `\"`, `\$` escapes, may span lines).
//! Unquoted and double-quoted values are interpolated as compose files are ([`crate::template`]:
//! `$VAR`, `${VAR:-default}`, `${VAR:?error}` …, `$$` for a `$`), from the variables above in
//! the file, then the caller's environment. A bare `KEY` takes the caller's value and is left out when it has none.
//!
//! Written here rather than taken from `dotenvy`: that crate refuses unquoted values with
//! spaces and bare names, both of which Compose files use. Stricter than `docker run
//! --env-file`, which takes every value literally: quotes are removed, as Compose does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `FILE:LINE: what is wrong` (`FILE: …` when it cannot be read).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{}: {message}", path.display(), match line { 0 => String::new(), n => format!(":{n}") })]
pub struct EnvFileError {
    pub path: PathBuf,
    /// 1-based; 0 when the file cannot be read.
    pub line: usize,
    pub message: String,
}

/// Reads an environment file: `KEY=VALUE` strings in the file's order.
pub fn read(path: &Path) -> Result<Vec<String>, EnvFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| EnvFileError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read the env file: {}", io_reason(&e)),
    })?;
    parse(&text, |key| std::env::var(key).ok()).map_err(|(line, message)| EnvFileError {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parses an environment file's text; `lookup` gives the caller's variables. The error is the
/// 1-based line and what is wrong.
pub fn parse(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, (usize, String)> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let first = n + 1;
        let line = lines[n].trim_start();
        n += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, rest) = match line.split_once('=') {
            Some((key, rest)) => (key.trim_end(), Some(rest)),
            None => (line.trim_end(), None),
        };
        check_key(key).map_err(|e| (first, e))?;
        let get = |name: &str| seen.get(name).cloned().or_else(|| lookup(name));
        let value = match rest {
            None => match lookup(key) {
                Some(value) => value,
                None => continue,
            },
            Some(rest) => {
                let rest = rest.trim_start();
                match rest.chars().next() {
                    Some('\'') => single_quoted(&rest[1..]).map_err(|e| (first, e))?,
                    Some('"') => {
                        // A double-quoted value may go on over the next lines.
                        let mut raw = rest[1..].to_string();
                        loop {
                            match double_quoted(&raw, &get) {
                                Ok(Some(value)) => break value,
                                Ok(None) if n < lines.len() => {
                                    raw.push('\n');
                                    raw.push_str(lines[n]);
                                    n += 1;
                                }
                                Ok(None) => {
                                    return Err((first, "a double quote is never closed".into()))
                                }
                                Err(e) => return Err((first, e)),
                            }
                        }
                    }
                    _ => {
                        let value = match rest.find(" #").or_else(|| rest.find("\t#")) {
                            Some(cut) => &rest[..cut],
                            None => rest,
                        };
                        interpolate(value.trim_end(), &get).map_err(|e| (first, e))?
                    }
                }
            }
        };
        seen.insert(key.to_string(), value.clone());
        out.push((key.to_string(), value));
    }
    Ok(out.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// `No such file or directory`, without Rust's ` (os error 2)`.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    text.find(" (os error")
        .map_or(text.clone(), |cut| text[..cut].to_string())
}

fn check_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {key:?}: expected KEY=VALUE with a name of letters, digits and '_'"
        ))
    }
}

/// After a closing quote only a comment may follow.
fn check_tail(tail: &str) -> Result<(), String> {
    let tail = tail.trim();
    if tail.is_empty() || tail.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected {tail:?} after the closing quote"))
    }
}

/// `'…'`: literal, `\'` for a quote.
fn single_quoted(raw: &str) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if raw[i + 1..].starts_with('\'') => {
                value.push('\'');
                chars.next();
            }
            '\'' => {
                check_tail(&raw[i + 1..])?;
                return Ok(value);
            }
            c => value.push(c),
        }
    }
    Err("a single quote is never closed".into())
}

/// `"…"` with escapes and interpolation; `None` while the closing quote has not come.
fn double_quoted(
    raw: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let mut unescaped = String::new();
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => unescaped.push('\n'),
                Some('r') => unescaped.push('\r'),
                Some('t') => unescaped.push('\t'),
                Some('"') => unescaped.push('"'),
                Some('\\') => unescaped.push('\\'),
                // Kept escaped for interpolation to read as a literal dollar.
                Some('$') => unescaped.push_str("$$"),
                Some(other) => {
                    unescaped.push('\\');
                    unescaped.push(other);
                }
                None => unescaped.push('\\'),
            },
            '"' => {
                check_tail(&raw[i + 1..])?;
                return interpolate(&unescaped, get).map(Some);
            }
            c => unescaped.push(c),
        }
    }
    Ok(None)
}

/// Compose's substitutions ([`crate::template`]); a `$` before anything else stays a `$`.
fn interpolate(text: &str, get: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    crate::template::substitute(text, get, crate::template::LoneDollar::Kept).map(|s| s.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            "FROM_CALLER" => Some("caller".into()),
            _ => None,
        }
    }

    #[test]
    fn composes_examples() {
        let text = r#"
# a comment
  # an indented one

A=VAL
B=VAL # comment
C=VAL# not a comment
D="VAL # not a comment"
E="VAL" # comment
F='$OTHER'
G='Let\'s go!'
H="{\"hello\": \"json\"}"
I="some\tvalue"
J='some\tvalue'
K=some\tvalue
export L = spaced value  
M=
N="two
lines"
O=$HOME/x ${HOME}/y ${MISSING:-def} ${EMPTY:-def} ${EMPTY-def} $$ $A
P="$A and \$A"
FROM_CALLER
NOT_SET
"#;
        let got = parse(text, env).unwrap();
        let want = [
            "A=VAL",
            "B=VAL",
            "C=VAL# not a comment",
            "D=VAL # not a comment",
            "E=VAL",
            "F=$OTHER",
            "G=Let's go!",
            "H={\"hello\": \"json\"}",
            "I=some\tvalue",
            "J=some\\tvalue",
            "K=some\\tvalue",
            "L=spaced value",
            "M=",
            "N=two\nlines",
            "O=/home/u/x /home/u/y def def  $ VAL",
            "P=VAL and $A",
            "FROM_CALLER=caller",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("A=1\n1BAD=2\n", 2, "invalid variable name \"1BAD\""),
            ("A='open\n", 1, "a single quote is never closed"),
            ("\nA=\"open\nstill\n", 2, "a double quote is never closed"),
            ("A=\"x\" y\n", 1, "unexpected \"y\" after the closing quote"),
            ("A=${B\n", 1, "invalid interpolation format"),
            ("=x\n", 1, "invalid variable name \"\""),
        ];
        for (text, line, message) in cases {
            let (got_line, got) = parse(text, env).expect_err(text);
            assert_eq!(got_line, line, "{text:?}: {got}");
            assert!(got.starts_with(message), "{text:?}: {got}");
        }
    }
}
