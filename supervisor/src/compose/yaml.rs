//! compose.yaml into a [`Tree`], from `saphyr-parser`'s events: YAML 1.2's core schema for
//! plain scalars (so `restart: no` is the string "no", as in Docker Compose), anchors and
//! aliases, and `<<` merge keys (the map's own keys win, then the merged maps in order).
//!
//! saphyr-parser is the maintained successor of yaml-rust (serde_yaml is archived) and the
//! only pure-Rust YAML 1.2 parser whose events carry their positions: each error can name its
//! line and column, as compose.toml's do.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::node::Invalid;
use super::tree::{Key, Tree, Value};

/// What aliases may expand the document to, against "billion laughs".
const MAX_NODES: usize = 1_000_000;

/// Parses one YAML document; an empty file is a null document.
pub(crate) fn parse(text: &str) -> Result<Tree, Invalid> {
    let offsets = CharOffsets::new(text);
    let mut builder = Builder {
        offsets: &offsets,
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        nodes: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|err| Invalid {
            at: offsets.byte(err.marker().index()),
            field: String::new(),
            message: format!("invalid YAML: {}", err.info()),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.root.unwrap_or_else(|| Tree::new(0, Value::Null)))
}

/// saphyr counts positions in characters; errors are placed by byte offset.
struct CharOffsets(Vec<usize>);

impl CharOffsets {
    fn new(text: &str) -> Self {
        let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        offsets.push(text.len());
        CharOffsets(offsets)
    }

    fn byte(&self, char_index: usize) -> usize {
        self.0[char_index.min(self.0.len() - 1)]
    }
}

/// A collection being built: a list, or a map with the key whose value comes next.
enum Open {
    List {
        at: usize,
        anchor: usize,
        items: Vec<Tree>,
    },
    Map {
        at: usize,
        anchor: usize,
        entries: Vec<(Key, Tree)>,
        key: Option<Key>,
        /// The `<<` values, merged in when the map ends.
        merges: Vec<Tree>,
    },
}

struct Builder<'o> {
    offsets: &'o CharOffsets,
    stack: Vec<Open>,
    /// By anchor id (ids start at 1).
    anchors: Vec<Option<Tree>>,
    root: Option<Tree>,
    nodes: usize,
}

impl Builder<'_> {
    fn event(&mut self, event: Event, span: Span) -> Result<(), Invalid> {
        let at = self.offsets.byte(span.start.index());
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
            Event::DocumentStart(_) if self.root.is_some() => Err(Invalid {
                at,
                field: String::new(),
                message: "a compose file holds one YAML document (found a second `---`)".into(),
            }),
            Event::DocumentStart(_) => Ok(()),
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref()).map_err(|message| Invalid {
                    at,
                    field: String::new(),
                    message,
                })?;
                self.value(Tree::new(at, value), anchor, at)
            }
            Event::Alias(id) => {
                let mut tree =
                    self.anchors.get(id).cloned().flatten().ok_or_else(|| {
                        invalid(at, "an alias to an anchor that is not defined yet")
                    })?;
                self.nodes += tree.size();
                if self.nodes > MAX_NODES {
                    return Err(invalid(at, "aliases expand the file to too many values"));
                }
                // The copy is placed at the alias, its insides where the anchor wrote them.
                tree.at = at;
                self.value(tree, 0, at)
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "!!seq", at)?;
                self.stack.push(Open::List {
                    at,
                    anchor,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "!!map", at)?;
                self.stack.push(Open::Map {
                    at,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                });
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Open::List { at, anchor, items }) => {
                    self.value(Tree::new(at, Value::List(items)), anchor, at)
                }
                _ => unreachable!("the parser balances sequences"),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Open::Map {
                    at,
                    anchor,
                    mut entries,
                    merges,
                    ..
                }) => {
                    for merged in merges {
                        merge(&mut entries, merged)?;
                    }
                    self.value(Tree::new(at, Value::Map(entries)), anchor, at)
                }
                _ => unreachable!("the parser balances mappings"),
            },
        }
    }

    /// A finished value: a list's element, a map's key or value, or the document.
    fn value(&mut self, tree: Tree, anchor: usize, at: usize) -> Result<(), Invalid> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(invalid(at, "the file holds too many values"));
        }
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(tree.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(tree),
            Some(Open::List { items, .. }) => items.push(tree),
            Some(Open::Map {
                entries,
                key,
                merges,
                ..
            }) => match key.take() {
                None => *key = Some(map_key(tree)?),
                Some(k) if k.name == "<<" => merges.push(tree),
                Some(k) => {
                    if entries.iter().any(|(e, _)| e.name == k.name) {
                        return Err(invalid(
                            k.at,
                            format!("duplicate key {:?} in this mapping", k.name),
                        ));
                    }
                    entries.push((k, tree));
                }
            },
        }
        Ok(())
    }
}

fn invalid(at: usize, message: impl Into<String>) -> Invalid {
    Invalid {
        at,
        field: String::new(),
        message: message.into(),
    }
}

/// Keys are scalars, read as their text (`80: …` is the key "80").
fn map_key(tree: Tree) -> Result<Key, Invalid> {
    let name = match tree.value {
        Value::Str { text, .. } => text,
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Datetime | Value::List(_) | Value::Map(_) => {
            return Err(invalid(tree.at, "a mapping's key must be a plain value"))
        }
    };
    Ok(Key { name, at: tree.at })
}

/// `<<: *base` or `<<: [*a, *b]`: keys not in the map already are added.
fn merge(entries: &mut Vec<(Key, Tree)>, merged: Tree) -> Result<(), Invalid> {
    let at = merged.at;
    let sources = match merged.value {
        Value::Map(_) => vec![merged],
        Value::List(items) => items,
        _ => {
            return Err(invalid(
                at,
                "a merge key (<<) takes a mapping or a list of them",
            ))
        }
    };
    for source in sources {
        let Value::Map(source_entries) = source.value else {
            return Err(invalid(
                source.at,
                "a merge key (<<) takes a mapping or a list of them",
            ));
        };
        for (key, tree) in source_entries {
            if !entries.iter().any(|(e, _)| e.name == key.name) {
                entries.push((key, tree));
            }
        }
    }
    Ok(())
}

fn check_collection_tag(tag: Option<&Tag>, core: &str, at: usize) -> Result<(), Invalid> {
    match tag {
        None => Ok(()),
        Some(tag) if tag_name(tag) == core => Ok(()),
        Some(tag) => Err(unsupported_tag(tag, at)),
    }
}

fn tag_name(tag: &Tag) -> String {
    match tag.handle.as_str() {
        "tag:yaml.org,2002:" | "!!" => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    }
}

fn unsupported_tag(tag: &Tag, at: usize) -> Invalid {
    invalid(
        at,
        format!(
            "the tag {} is not supported (Compose's !reset and !override are not supported yet)",
            tag_name(tag)
        ),
    )
}

/// A scalar's value: quoted and block scalars are strings; a plain one is typed by the core
/// schema, unless a core tag says otherwise.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let string = |plain| Value::Str {
        text: text.to_string(),
        plain,
    };
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => resolve_plain(text),
            _ => string(false),
        });
    };
    let wrong = |what: &str| format!("{text:?} is not {what} (tag {})", tag_name(tag));
    Ok(match tag_name(tag).as_str() {
        "!!str" => string(false),
        "!!int" => match resolve_plain(text) {
            value @ Value::Int(_) => value,
            _ => return Err(wrong("an integer")),
        },
        "!!float" => match resolve_plain(text) {
            Value::Int(i) => Value::Float(i as f64),
            value @ Value::Float(_) => value,
            _ => return Err(wrong("a number")),
        },
        "!!bool" => match resolve_plain(text) {
            value @ Value::Bool(_) => value,
            _ => return Err(wrong("true or false")),
        },
        "!!null" => Value::Null,
        _ => return Err(unsupported_tag(tag, 0).message),
    })
}

/// YAML 1.2's core schema: null, booleans, integers (decimal, 0o, 0x), floats; else a string.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let radix = |prefix: &str, radix: u32| {
        text.strip_prefix(prefix)
            .filter(|digits| !digits.is_empty())
            .and_then(|digits| i64::from_str_radix(digits, radix).ok())
    };
    if let Some(i) = radix("0o", 8).or_else(|| radix("0x", 16)) {
        return Value::Int(i);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
    }
    if is_core_float(unsigned) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str {
        text: text.to_string(),
        plain: true,
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, without the sign.
fn is_core_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}
