//! The document both compose formats are read into: scalars, lists and maps, each with the byte
//! offset it starts at, so one typed reader (`node.rs`) serves TOML and YAML with the same
//! `FILE:LINE:COL` errors.

use toml_edit::{ImDocument, Item, TableLike, Value as TomlValue};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    /// Byte offset in the text.
    pub at: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `plain`: a YAML scalar without quotes, whose type is read from its text (after
    /// interpolation too); TOML strings are never plain.
    Str {
        text: String,
        plain: bool,
    },
    /// TOML's date-times, which no compose key takes.
    Datetime,
    List(Vec<Tree>),
    Map(Vec<(Key, Tree)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    /// Byte offset of the key itself.
    pub at: usize,
}

impl Tree {
    pub fn new(at: usize, value: Value) -> Self {
        Tree { at, value }
    }

    /// How many nodes the tree holds, to bound what YAML aliases may expand to.
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::List(items) => items.iter().map(Tree::size).sum(),
            Value::Map(entries) => entries.iter().map(|(_, t)| t.size()).sum(),
            _ => 0,
        }
    }
}

/// A parsed TOML document as a tree. Implicit tables (`services` in `[services.web]`) have no
/// span: they are placed at their parent's.
pub(crate) fn from_toml(doc: &ImDocument<String>) -> Tree {
    item(doc.as_item(), 0)
}

fn item(item: &Item, parent: usize) -> Tree {
    let at = item.span().map_or(parent, |span| span.start);
    match item {
        Item::None => Tree::new(at, Value::Null),
        Item::Value(value) => toml_value(value, parent),
        Item::Table(table) => table_like(table, at),
        Item::ArrayOfTables(array) => Tree::new(
            at,
            Value::List(array.iter().map(|t| table_like(t, at)).collect()),
        ),
    }
}

fn table_like(table: &dyn TableLike, at: usize) -> Tree {
    let entries = table
        .iter()
        .map(|(name, value)| {
            let key_at = table
                .key(name)
                .and_then(|k| k.span())
                .map_or(at, |span| span.start);
            let key = Key {
                name: name.to_string(),
                at: key_at,
            };
            (key, item(value, key_at))
        })
        .collect();
    Tree::new(at, Value::Map(entries))
}

fn toml_value(value: &TomlValue, parent: usize) -> Tree {
    let at = value.span().map_or(parent, |span| span.start);
    let value = match value {
        TomlValue::String(s) => Value::Str {
            text: s.value().clone(),
            plain: false,
        },
        TomlValue::Integer(i) => Value::Int(*i.value()),
        TomlValue::Float(f) => Value::Float(*f.value()),
        TomlValue::Boolean(b) => Value::Bool(*b.value()),
        TomlValue::Datetime(_) => Value::Datetime,
        TomlValue::Array(array) => Value::List(array.iter().map(|v| toml_value(v, at)).collect()),
        TomlValue::InlineTable(table) => return table_like(table, at),
    };
    Tree::new(at, value)
}
