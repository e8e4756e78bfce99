//! [`Engine`] over forge-runtime: containers created from the compose file, started on the
//! launcher's threads with their output multiplexed to the terminal and their logs, awaited on
//! tokio's reactor through their pidfds.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forge_netd::Netd;
use forge_runtime::{
    Container, CreateOptions, ExitInfo, LaunchIo, Mount, MountType, NetSpec, Runtime, Signaller,
    Started,
};
use nix::sys::signal::Signal;
use tokio::net::unix::pipe::Receiver;
use tokio::task::JoinHandle;

use super::engine::{Engine, StartError};
use super::log_file::{pump, LogFile};
use super::{container_name, lock, network_name, volume_name, Options};
use crate::compose::logging::Logging;
use crate::compose::{Compose, Service};
use crate::health::Health;
use crate::launcher::Launcher;
use crate::output::Printer;

pub(super) struct RuntimeEngine {
    runtime: Runtime,
    netd: Netd,
    opts: Options,
    launcher: Launcher,
    printer: Arc<Printer>,
    services: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One service: its create options, its container, and its current run.
struct Slot {
    options: CreateOptions,
    /// What of its output the container's log file keeps.
    logging: Logging,
    prefix: String,
    container: Mutex<Option<Container>>,
    run: Mutex<Option<Arc<Run>>>,
}

struct Run {
    started: Started,
    signaller: Signaller,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl RuntimeEngine {
    pub(super) fn new(
        runtime: Runtime,
        netd: Netd,
        compose: &Compose,
        order: &[String],
        opts: &Options,
    ) -> Self {
        let names: Vec<&str> = order.iter().map(String::as_str).collect();
        let engine = Self {
            runtime,
            netd,
            opts: opts.clone(),
            launcher: Launcher::new(4),
            printer: Arc::new(Printer::new(&names, opts.style)),
            services: Mutex::default(),
        };
        for name in order {
            engine.define(compose, name);
        }
        engine
    }

    fn slot(&self, service: &str) -> Arc<Slot> {
        Arc::clone(&lock(&self.services)[service])
    }

    fn run_of(&self, service: &str) -> Option<Arc<Run>> {
        lock(&self.slot(service).run).clone()
    }

    fn container_of(&self, service: &str) -> Option<Container> {
        lock(&self.slot(service).container).clone()
    }

    /// Creates the service's container unless it has one. One the user removed meanwhile is
    /// found out by the start that fails on it (see [`Engine::start`]), which leaves the slot
    /// empty, so that the next call creates it again from the file.
    async fn container_for(&self, slot: &Slot) -> Result<Container, StartError> {
        if let Some(c) = lock(&slot.container).take() {
            return Ok(c);
        }
        let runtime = self.runtime.clone();
        let opts = slot.options.clone();
        tokio::task::spawn_blocking(move || runtime.create(&opts))
            .await
            .map_err(|e| StartError::Create(e.to_string()))?
            .map_err(|e| StartError::Create(e.to_string()))
    }

    fn spawn_pumps(
        &self,
        c: &Container,
        slot: &Slot,
        output: [Receiver; 2],
    ) -> Vec<JoinHandle<()>> {
        let (prefix, logging) = (&slot.prefix, slot.logging);
        let log = LogFile::open(&self.runtime.log_path(c), logging);
        output
            .into_iter()
            .map(|reader| {
                let printer = Arc::clone(&self.printer);
                let prefix = prefix.to_string();
                let log = log.clone();
                tokio::spawn(async move { pump(reader, &printer, &prefix, log).await })
            })
            .collect()
    }
}

impl Engine for RuntimeEngine {
    async fn start(&self, service: &str, restarts: u32) -> Result<i32, StartError> {
        let slot = self.slot(service);
        let mut c = self.container_for(&slot).await?;
        c.state.restarts = restarts;
        let pipes = output_pipe().and_then(|out| Ok((out, output_pipe()?)));
        let ((out_read, out_write), (err_read, err_write)) = match pipes {
            Ok(pipes) => pipes,
            Err(e) => {
                *lock(&slot.container) = Some(c);
                return Err(StartError::Start(format!("creating a pipe: {e}")));
            }
        };
        let io = LaunchIo {
            stdin: Stdio::null(),
            stdout: out_write.into(),
            stderr: err_write.into(),
        };
        let runtime = self.runtime.clone();
        let (c, started) = self
            .launcher
            .run(move || {
                let started = runtime.start(&mut c, io, true);
                (c, started)
            })
            .await;
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                // `forge rm -f` holds the container's rootfs lock, which a start takes, until
                // its files are gone: a start it raced fails, and finds the container gone.
                let runtime = self.runtime.clone();
                let (name, id) = (c.name().to_string(), c.id().to_string());
                let gone = tokio::task::spawn_blocking(move || {
                    !runtime.get(&name).is_ok_and(|now| now.id() == id)
                })
                .await
                .unwrap_or(false);
                if gone {
                    super::say(&format!(
                        "{service}: its container {} was removed (forge rm?): creating it again from the file",
                        c.name()
                    ));
                    return Err(StartError::Removed);
                }
                *lock(&slot.container) = Some(c);
                return Err(StartError::Start(e.to_string()));
            }
        };
        let signaller = started.signaller(&c);
        let pid = started.pid;
        let pumps = self.spawn_pumps(&c, &slot, [out_read, err_read]);
        *lock(&slot.container) = Some(c);
        *lock(&slot.run) = Some(Arc::new(Run {
            started,
            signaller,
            pumps: Mutex::new(pumps),
        }));
        Ok(pid)
    }

    async fn exited(&self, service: &str) -> ExitInfo {
        match self.run_of(service) {
            Some(run) => run.started.exited().await,
            None => ExitInfo {
                code: 255,
                signal: None,
                reason: "not running".into(),
            },
        }
    }

    async fn record_exit(&self, service: &str, exit: ExitInfo) -> ExitInfo {
        let slot = self.slot(service);
        let pumps = lock(&slot.run)
            .take()
            .map(|run| std::mem::take(&mut *lock(&run.pumps)))
            .unwrap_or_default();
        let Some(mut c) = lock(&slot.container).take() else {
            return exit;
        };
        let runtime = self.runtime.clone();
        let (c, exit) = tokio::task::spawn_blocking(move || {
            let exit = runtime.record_exit(&mut c, exit);
            (c, exit)
        })
        .await
        .expect("recording an exit does not panic");
        *lock(&slot.container) = Some(c);
        for pump in pumps {
            let _ = pump.await;
        }
        exit
    }

    fn stopped_by_user(&self, service: &str) -> bool {
        self.container_of(service)
            .is_some_and(|c| self.runtime.stopped_by_user(&c))
    }

    fn running(&self, service: &str) -> bool {
        self.run_of(service).is_some()
    }

    fn signal(&self, service: &str, signal: Signal) {
        if let Some(run) = self.run_of(service) {
            run.signaller.signal(signal);
        }
    }

    fn kill(&self, service: &str) {
        if let Some(run) = self.run_of(service) {
            run.signaller.kill();
        }
    }

    fn image_stop_signal(&self, service: &str) -> Signal {
        self.container_of(service)
            .and_then(|c| Signal::try_from(c.config.stop_signal?).ok())
            .unwrap_or(Signal::SIGTERM)
    }

    async fn probe(&self, service: &str, test: &[String], timeout: Duration) -> bool {
        let Some(c) = self.container_of(service) else {
            return false;
        };
        let Ok(cmd) = self.runtime.exec_command(&c, test, &[]) else {
            return false;
        };
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        match cmd.spawn() {
            Ok(mut child) => matches!(
                tokio::time::timeout(timeout, child.wait()).await,
                Ok(Ok(status)) if status.success()
            ),
            Err(_) => false,
        }
    }

    fn record_health(&self, service: &str, health: Health) {
        let slot = self.slot(service);
        let mut container = lock(&slot.container);
        if let Some(c) = container.as_mut() {
            c.state.health = Some(health.to_string());
            let _ = self.runtime.save_state(c);
        }
    }

    fn container_name(&self, service: &str) -> String {
        lock(&self.services)
            .get(service)
            .and_then(|slot| slot.options.name.clone())
            .unwrap_or_else(|| service.to_string())
    }

    async fn prepare(&self, compose: &Compose, added: &[String]) -> Result<(), String> {
        super::setup::prepare_more(
            &self.runtime,
            &self.netd,
            compose,
            &self.opts.project,
            added,
        )
        .await
    }

    fn define(&self, compose: &Compose, service: &str) {
        let mut services = lock(&self.services);
        let index = services.len();
        let slot = Slot {
            options: create_options(
                compose,
                &self.opts,
                &self.runtime.roots().run,
                service,
                &compose.services[service],
            ),
            logging: compose.services[service].logging,
            prefix: self.printer.prefix(service, index),
            container: Mutex::new(None),
            run: Mutex::new(None),
        };
        services.insert(service.to_string(), Arc::new(slot));
    }

    async fn remove(&self, service: &str) {
        let Some(slot) = lock(&self.services).remove(service) else {
            return;
        };
        let Some(name) = slot.options.name.clone() else {
            return;
        };
        let (runtime, project) = (self.runtime.clone(), self.opts.project.clone());
        let service = service.to_string();
        // Only this service's: one made by hand under the name meanwhile stays.
        let removed = tokio::task::spawn_blocking(move || match runtime.get(&name) {
            Ok(c) if super::setup::is_service(&c, &project, &service) => runtime
                .remove_with_volumes(&name, true)
                .map_err(|e| format!("removing {name}: {e}")),
            _ => Ok(()),
        })
        .await
        .expect("removing a container does not panic");
        if let Err(e) = removed {
            tracing::warn!("{e}");
        }
    }
}

fn create_options(
    compose: &Compose,
    opts: &Options,
    run_root: &std::path::Path,
    name: &str,
    svc: &Service,
) -> CreateOptions {
    let project = &opts.project;
    let mut mounts: Vec<Mount> = svc
        .volumes
        .iter()
        .map(|m| project_mount(compose, project, m))
        .collect();
    mounts.extend(super::generated::mounts(run_root, project, svc));
    CreateOptions {
        name: Some(container_name(project, name, svc)),
        image: svc.image.clone(),
        entrypoint: svc.entrypoint.clone(),
        args: svc.command.clone().unwrap_or_default(),
        env: svc.environment.clone(),
        workdir: svc.working_dir.clone(),
        hostname: Some(svc.hostname.clone().unwrap_or_else(|| name.to_string())),
        limits: svc.limits.clone(),
        user: svc.user.clone(),
        init: svc.init,
        privileges: svc.privileges.clone(),
        read_only: svc.read_only,
        tmpfs: svc.tmpfs.clone(),
        mounts,
        userns: svc.userns,
        net: NetSpec {
            networks: svc
                .networks
                .iter()
                .map(|n| network_name(project, n, &compose.networks[n]))
                .collect(),
            ip: svc.ipv4_address,
            ports: svc.ports.clone(),
            publish_all: false,
            aliases: std::iter::once(name.to_string())
                .chain(svc.aliases.iter().cloned())
                .collect(),
        },
        cgroup_manager: opts.cgroup_manager,
        labels: svc
            .labels
            .clone()
            .into_iter()
            .chain([
                (super::setup::PROJECT_LABEL.to_string(), project.clone()),
                (super::setup::SERVICE_LABEL.to_string(), name.to_string()),
            ])
            .collect(),
        ..CreateOptions::default()
    }
}

/// A service's mount with a named volume's key replaced by the volume's name in Forge.
fn project_mount(compose: &Compose, project: &str, mount: &Mount) -> Mount {
    let mut mount = mount.clone();
    if let (MountType::Volume, Some(def)) = (mount.kind, compose.volumes.get(&mount.source)) {
        mount.source = volume_name(project, &mount.source, def);
    }
    mount
}

/// A pipe whose write end the container gets; the read end as a tokio reader.
fn output_pipe() -> std::io::Result<(Receiver, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((Receiver::from_owned_fd(read)?, write))
}
