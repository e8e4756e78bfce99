//! The texts a project was read from (its `-f` files and the files `extends` names), each
//! placed at an origin of its own in one space of offsets: a position in a merged tree says
//! which file it is in, and errors name that file's line and column.

use std::path::{Path, PathBuf};

use super::node::Invalid;
use super::tree::{Tree, Value};
use super::ComposeError;

#[derive(Default)]
pub(crate) struct Sources {
    /// Path, text and origin, in the order they were added.
    files: Vec<(PathBuf, String, usize)>,
}

impl Sources {
    /// Registers a file's text and moves `tree`'s positions (offsets in that text) to its
    /// origin.
    pub fn add(&mut self, path: &Path, text: &str, tree: &mut Tree) {
        let origin = self
            .files
            .last()
            .map_or(0, |(_, text, origin)| origin + text.len() + 1);
        self.files
            .push((path.to_path_buf(), text.to_string(), origin));
        shift(tree, origin);
    }

    /// The error at `invalid`'s position, named in its file.
    pub fn error(&self, invalid: Invalid) -> ComposeError {
        let (path, text, origin) = self
            .files
            .iter()
            .rev()
            .find(|(_, _, origin)| *origin <= invalid.at)
            .expect("the first file is at origin 0");
        let local = Invalid {
            at: invalid.at - origin,
            ..invalid
        };
        ComposeError::at(path, text, local)
    }
}

fn shift(tree: &mut Tree, origin: usize) {
    tree.at += origin;
    match &mut tree.value {
        Value::List(items) => items.iter_mut().for_each(|t| shift(t, origin)),
        Value::Map(entries) => entries.iter_mut().for_each(|(key, t)| {
            key.at += origin;
            shift(t, origin);
        }),
        _ => {}
    }
}
