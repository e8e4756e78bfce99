//! A service's `logging`: what is kept of its container's output besides the supervisor's own
//! printing. `json-file` (Docker's default) and `local` keep it in the container's log file,
//! which `forge logs` and `forge compose logs` read, rotated at `max-size` into at most
//! `max-file` files (`local` defaults to Docker's 20m and 5); `none` keeps nothing. Forge's
//! log file is the output's bytes, not Docker's JSON lines: nothing but Forge reads it.

use super::node::{Invalid, Node};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogDriver {
    #[default]
    JsonFile,
    Local,
    None,
}

impl LogDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::Local => "local",
            LogDriver::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logging {
    pub driver: LogDriver,
    /// Rotate when the file would grow past this many bytes; `None`: never.
    pub max_size: Option<u64>,
    /// Files kept, the current one included (at least 1: rotating then empties it).
    pub max_file: u32,
}

impl Default for Logging {
    fn default() -> Self {
        Logging::of(LogDriver::JsonFile)
    }
}

impl Logging {
    /// The driver's defaults, as Docker's.
    fn of(driver: LogDriver) -> Self {
        let max_size = (driver == LogDriver::Local).then_some(20 << 20);
        let max_file = if driver == LogDriver::Local { 5 } else { 1 };
        Logging {
            driver,
            max_size,
            max_file,
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Logging::default()
    }
}

/// `logging = { driver = "local", options = { max-size = "10m", max-file = "3" } }`.
pub(super) fn read(node: &Node) -> Result<Logging, Invalid> {
    let table = node.table("a table { driver, options }")?;
    table.only(&["driver", "options"])?;
    let driver = match table.get("driver") {
        None => LogDriver::JsonFile,
        Some(node) => match node.string("a logging driver")? {
            "json-file" => LogDriver::JsonFile,
            "local" => LogDriver::Local,
            "none" => LogDriver::None,
            other => {
                return Err(node.err(format!(
                    "logging driver {other:?} is not supported (json-file, local or none: Forge keeps logs in files only)"
                )))
            }
        },
    };
    let mut logging = Logging::of(driver);
    let Some(options) = table.get("options") else {
        return Ok(logging);
    };
    for entry in options.table("a table of the driver's options")?.entries() {
        let value = entry.node.string("a string, like \"10m\"")?;
        match (entry.key, driver) {
            (_, LogDriver::None) => {
                return Err(entry.key_spot.err("the none driver takes no options"));
            }
            ("max-size", _) => {
                let size =
                    forge_runtime::parse_size("max-size", value).map_err(|e| entry.node.err(e))?;
                if size == 0 {
                    return Err(entry.node.err("max-size must be more than 0"));
                }
                logging.max_size = Some(size);
            }
            ("max-file", _) => {
                logging.max_file = match value.parse::<u32>() {
                    Ok(n @ 1..=1000) => n,
                    _ => {
                        return Err(entry
                            .node
                            .err("max-file is a number of files from 1 to 1000"))
                    }
                };
            }
            (key, _) => {
                return Err(entry.key_spot.err(format!(
                    "option {key:?} is not supported (max-size and max-file are; rotated files are kept as they are)"
                )));
            }
        }
    }
    Ok(logging)
}
