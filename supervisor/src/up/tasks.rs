//! The service loops that run, by service. Each can be retired (its container stopped, for a
//! `stop`, a `restart` or a re-creation) and awaited; a finished one is said on a channel with
//! its generation, so that a late word from a retired loop is not taken for its successor's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::engine::Engine;
use super::{service, stop, Core};
use crate::gate::Phase;

pub(super) struct Tasks<E> {
    core: Arc<Core<E>>,
    live: HashMap<String, Task>,
    generation: u64,
    finished: mpsc::UnboundedSender<(String, u64)>,
}

struct Task {
    generation: u64,
    retire: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl<E: Engine> Tasks<E> {
    /// The registry, and the channel on which each loop says it finished.
    pub(super) fn new(core: Arc<Core<E>>) -> (Self, mpsc::UnboundedReceiver<(String, u64)>) {
        let (finished, rx) = mpsc::unbounded_channel();
        let tasks = Tasks {
            core,
            live: HashMap::new(),
            generation: 0,
            finished,
        };
        (tasks, rx)
    }

    /// Starts the loop of `name` (which must have no live one).
    pub(super) fn spawn(&mut self, name: &str) {
        self.generation += 1;
        let generation = self.generation;
        let (retire, retired) = watch::channel(false);
        self.core.set_phase(name, Phase::Waiting);
        let core = Arc::clone(&self.core);
        let finished = self.finished.clone();
        let owned = name.to_string();
        let handle = tokio::spawn(async move {
            service::supervise(core, owned.clone(), retired).await;
            let _ = finished.send((owned, generation));
        });
        let task = Task {
            generation,
            retire,
            handle,
        };
        self.live.insert(name.to_string(), task);
    }

    pub(super) fn is_live(&self, name: &str) -> bool {
        self.live.contains_key(name)
    }

    pub(super) fn live(&self) -> usize {
        self.live.len()
    }

    /// A loop said it finished.
    pub(super) fn finished(&mut self, name: &str, generation: u64) {
        if self
            .live
            .get(name)
            .is_some_and(|t| t.generation == generation)
        {
            self.live.remove(name);
        }
    }

    /// Stops the containers of `names` (their stop signal, SIGKILL after `grace` or their
    /// own grace period), all at once, and waits for their loops to end.
    pub(super) async fn retire(&mut self, names: &[String], grace: Option<Duration>) {
        let mut stopping = Vec::new();
        for name in names {
            let Some(task) = self.live.remove(name) else {
                continue;
            };
            task.retire.send_replace(true);
            let core = Arc::clone(&self.core);
            let name = name.clone();
            stopping.push(tokio::spawn(async move {
                stop::stop_one(&core, &name, grace).await;
                let _ = task.handle.await;
            }));
        }
        for stop in stopping {
            let _ = stop.await;
        }
    }

    /// Waits for every loop to end.
    pub(super) async fn join_all(&mut self) {
        for (_, task) in self.live.drain() {
            let _ = task.handle.await;
        }
    }
}
