//! A running project's socket, `RUN_ROOT/projects/PROJECT.sock`: `forge compose` asks it to
//! converge (a second `up`), stop, start, restart or go down. A request is one JSON line,
//! `{"action": "up", "args": [...]}` (forge-supervise's arguments for the files), or
//! `{"action": "stop"|"start"|"restart", "services": [...], "timeout": SECONDS}`, or
//! `{"action": "down", "timeout": SECONDS, "volumes": BOOL}`; the answer is lines for the user, the last `ok`
//! or `error: WHY`. Only root and the user who runs the supervisor may ask (the socket is
//! 0600 and each peer's credentials are checked). SIGHUP converges on the files as they are.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use forge_runtime::Runtime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::control::{Action, Request};
use super::say;
use crate::compose::Compose;

/// Reads the project's files again: with the arguments a second `up` gave, or (`None`) with
/// those the supervisor was started with.
pub type Loader = Arc<dyn Fn(Option<&[String]>) -> Result<Compose, String> + Send + Sync>;

/// The longest request line read.
const MAX_REQUEST: u64 = 1 << 20;

pub fn socket_path(run_root: &Path, project: &str) -> PathBuf {
    run_root.join("projects").join(format!("{project}.sock"))
}

/// Serves the socket (and SIGHUP) until dropped, when the socket goes too.
pub struct Server {
    path: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the project's socket and SIGHUP. A socket that cannot be made is only warned of:
/// the project runs on, and `forge compose down` can still signal it.
pub fn serve(
    runtime: &Runtime,
    project: &str,
    loader: Loader,
    requests: mpsc::UnboundedSender<Request>,
) -> Server {
    let path = socket_path(&runtime.roots().run, project);
    let mut tasks = Vec::new();
    match listen(&path) {
        Ok(listener) => {
            let (loader, requests) = (Arc::clone(&loader), requests.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, Arc::clone(&loader), requests.clone()));
                }
            }));
        }
        Err(e) => {
            tracing::warn!("{e}: a second up, stop, start and restart cannot reach this project")
        }
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => tasks.push(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                say("SIGHUP: reading the files again");
                reload_on_hangup(&loader, &requests).await;
            }
        })),
        Err(e) => tracing::warn!("watching SIGHUP: {e}"),
    }
    Server { path, tasks }
}

fn listen(path: &Path) -> Result<UnixListener, String> {
    let dir = path.parent().expect("a socket path has a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // The project's lock is held: a socket there is a killed supervisor's.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(|e| format!("listening on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("securing {}: {e}", path.display()))?;
    Ok(listener)
}

async fn reload_on_hangup(loader: &Loader, requests: &mpsc::UnboundedSender<Request>) {
    let load = Arc::clone(loader);
    let compose = tokio::task::spawn_blocking(move || load(None))
        .await
        .unwrap_or_else(|e| Err(format!("reading the files: {e}")));
    let compose = match compose {
        Ok(compose) => compose,
        Err(e) => {
            tracing::error!("SIGHUP: {e}; the project goes on unchanged");
            return;
        }
    };
    let (reply, mut lines) = mpsc::unbounded_channel();
    let action = Action::Converge(Box::new(compose));
    if requests.send(Request { action, reply }).is_err() {
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            match line.strip_prefix("error: ") {
                Some(why) => tracing::error!("SIGHUP: {why}"),
                None if line != "ok" => say(&format!("SIGHUP: {line}")),
                None => {}
            }
        }
    });
}

async fn answer(stream: UnixStream, loader: Loader, requests: mpsc::UnboundedSender<Request>) {
    let allowed = stream
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == 0 || cred.uid() == nix::unistd::getuid().as_raw());
    let (read, mut write) = stream.into_split();
    if !allowed {
        let _ = write
            .write_all(b"error: only root and the project's owner may ask\n")
            .await;
        return;
    }
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let action = match parse(&line, loader).await {
        Ok(action) => action,
        Err(e) => {
            let _ = write.write_all(format!("error: {e}\n").as_bytes()).await;
            return;
        }
    };
    let (reply, mut lines) = mpsc::unbounded_channel();
    if requests.send(Request { action, reply }).is_err() {
        let _ = write.write_all(b"error: the project is stopping\n").await;
        return;
    }
    while let Some(line) = lines.recv().await {
        if write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            // The asker went away; the work goes on.
            break;
        }
    }
}

async fn parse(line: &str, loader: Loader) -> Result<Action, String> {
    let request: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("a request is one JSON line: {e}"))?;
    let strings = |key: &str| -> Vec<String> {
        request[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let timeout = request["timeout"].as_u64().map(Duration::from_secs);
    let services = strings("services");
    Ok(match request["action"].as_str().unwrap_or_default() {
        "up" => {
            let args = strings("args");
            let compose = tokio::task::spawn_blocking(move || loader(Some(&args)))
                .await
                .map_err(|e| format!("reading the files: {e}"))??;
            Action::Converge(Box::new(compose))
        }
        "stop" => Action::Stop { services, timeout },
        "start" => Action::Start { services },
        "restart" => Action::Restart { services, timeout },
        "down" => Action::Down {
            timeout,
            volumes: request["volumes"].as_bool().unwrap_or(false),
        },
        other => return Err(format!("unknown action {other:?}")),
    })
}

/// Asks the project's supervisor (a blocking client, for `forge compose`): each line of the
/// answer but the last goes to `on_line`; `Err` carries an `error:` answer's reason, or why
/// the supervisor could not be asked.
pub fn ask(
    run_root: &Path,
    project: &str,
    request: &serde_json::Value,
    mut on_line: impl FnMut(&str),
) -> Result<(), String> {
    let path = socket_path(run_root, project);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "asking project {project}'s supervisor ({}): {e}",
            path.display()
        )
    })?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("asking project {project}'s supervisor: {e}"))?;
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("reading project {project}'s answer: {e}"))?;
        if line == "ok" {
            return Ok(());
        }
        if let Some(why) = line.strip_prefix("error: ") {
            return Err(why.to_string());
        }
        on_line(&line);
    }
    Err(format!(
        "project {project}'s supervisor ended before it answered"
    ))
}
