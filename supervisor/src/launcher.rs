//! Threads that start containers and live as long as the supervisor.
//!
//! A container's PID 1 gets SIGKILL when the *thread* that started it ends (its parent-death
//! signal follows the creating thread), and tokio retires idle blocking threads. So starts run
//! on a few threads of our own that never end: a killed supervisor still takes its containers
//! with it, and a quiet one does not.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

pub struct Launcher {
    jobs: mpsc::Sender<Job>,
}

impl Launcher {
    /// `threads` starts can run at once.
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("launcher-{n}"))
                .spawn(move || loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        // Keep the thread (and the containers it started) alive until exit.
                        Err(_) => std::thread::park(),
                    }
                })
                .expect("spawning a launcher thread");
        }
        Self { jobs }
    }

    /// Runs `f` on a launcher thread and returns its result.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).expect("launcher threads never end");
        rx.await.expect("a launcher job does not panic")
    }
}
