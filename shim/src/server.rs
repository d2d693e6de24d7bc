//! The long-lived shim server: ttrpc on the socket `start` bound, the Task API under
//! both service names containerd uses and the Sandbox API beside them, the reaper, and
//! shutdown (containerd's Shutdown/ShutdownSandbox, or SIGTERM with nothing left).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use containerd_shim_protos::sandbox_async::create_sandbox;
use containerd_shim_protos::shim_async::create_task;
use containerd_shim_protos::ttrpc::r#async::transport::Listener;
use containerd_shim_protos::ttrpc::r#async::Server;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::args::Flags;
use crate::error::{Error, Result};
use crate::events::ContainerdEvents;
use crate::service::{SandboxService, TaskService};
use crate::shim::Shim;

/// Environment variable through which `start` hands the bound listener to the server.
pub const LISTEN_FD_ENV: &str = "TENT_SHIM_LISTEN_FD";

/// containerd 1.x and 2.x with a version-2 shim speak `containerd.task.v2.Task`;
/// 2.x with a version-3 bootstrap speaks v3 (the same messages under a new name).
const TASK_V2: &str = "containerd.task.v2.Task";
const TASK_V3: &str = "containerd.task.v3.Task";
/// How long a shim that was told to shut down still tries to hand containerd the events
/// it has queued (in the normal case there are none and it exits at once).
const EVENTS_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn serve(flags: Flags) -> Result<()> {
    let listener = inherited_listener()?;
    let socket = flags.socket.clone();
    let result = serve_on(flags, listener);
    // Whether the server ran or failed to come up, its socket must not outlive it.
    let path = socket.strip_prefix("unix://").unwrap_or(&socket);
    if let Err(e) = std::fs::remove_file(path) {
        log::warn!("remove socket {path}: {e}");
    }
    result
}

fn serve_on(flags: Flags, listener: UnixListener) -> Result<()> {
    if !flags.debug {
        log::set_max_level(log::LevelFilter::Info);
    }
    if let Err(e) = crate::shimlog::init(flags.debug) {
        // No log FIFO (e.g. started by hand): carry on without logs rather than fail.
        eprintln!("tent shim: logging disabled: {e}");
    }
    crate::isolate::log_panics();
    // containerd 2.3+ names the level (its own); `-debug` still raises it.
    if let Ok(level) = flags.log_level.parse::<log::LevelFilter>() {
        let floor = if flags.debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Off
        };
        log::set_max_level(level.max(floor));
    }
    crate::memory::configure_allocator();
    tent_runtime::set_child_subreaper()?;
    let init_exe = tent_runtime::InitExe::seal_current()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        // Idle blocking threads cost memory in every shim; they are cheap to recreate.
        .thread_keep_alive(std::time::Duration::from_millis(500))
        .build()
        .map_err(|e| Error::io("build tokio runtime", e))?;
    let result = runtime.block_on(run(flags, listener, init_exe));
    // Do not wait for blocking-pool threads: nothing they do matters once we exit.
    runtime.shutdown_background();
    result
}

fn inherited_listener() -> Result<UnixListener> {
    let fd: RawFd = std::env::var(LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the shim server must be started by `start` ({LISTEN_FD_ENV} is not set)"
            ))
        })?;
    std::env::remove_var(LISTEN_FD_ENV);
    nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
        .map_err(|e| Error::io(format!("listener fd {fd}"), e.into()))?;
    // SAFETY: `start` passed us this fd for exactly this purpose and nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| Error::io("set CLOEXEC on listener", e.into()))?;
    Ok(listener)
}

async fn run(flags: Flags, listener: UnixListener, init_exe: tent_runtime::InitExe) -> Result<()> {
    // Subscribe to SIGCHLD before anything can spawn a child.
    let mut sigchld = signal(SignalKind::child()).map_err(|e| Error::io("SIGCHLD handler", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let _sigpipe = signal(SignalKind::pipe()).map_err(|e| Error::io("SIGPIPE handler", e))?;

    let ttrpc_address = std::env::var("TTRPC_ADDRESS")
        .map_err(|_| Error::InvalidArgument("TTRPC_ADDRESS is not set".into()))?;
    let events =
        ContainerdEvents::connect(&ttrpc_address, flags.namespace.clone()).map_err(|e| {
            Error::Internal(format!(
                "connect to containerd events at {ttrpc_address}: {e}"
            ))
        })?;
    let events = Arc::new(events);
    let sandbox = crate::sandbox::Sandbox::new(Some(init_exe.clone()));
    let shim = Arc::new(
        Shim::new(
            events.clone(),
            crate::runtime::tent(init_exe),
            flags.namespace.clone(),
        )
        .with_sandbox(sandbox)
        .with_address(&flags.socket),
    );

    let mut services = create_task(Arc::new(TaskService(shim.clone())));
    if let Some(v3) = create_task(Arc::new(TaskService(shim.clone()))).remove(TASK_V2) {
        services.insert(TASK_V3.to_string(), v3);
    }
    services.extend(create_sandbox(Arc::new(SandboxService(shim.clone()))));
    let listener = Listener::try_from(listener).map_err(|e| Error::io("ttrpc listener", e))?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(services);
    server
        .start()
        .await
        .map_err(|e| Error::Internal(format!("start ttrpc server: {e}")))?;
    log::info!("tent shim serving on {}", flags.socket);
    tokio::spawn(crate::memory::trim_when_idle());

    loop {
        tokio::select! {
            _ = sigchld.recv() => reap(&shim).await,
            _ = sigterm.recv() => {
                if shim.is_idle() {
                    log::info!("SIGTERM with nothing left to serve: exiting");
                    break;
                }
                // Exiting would orphan running containers (their exits lost to containerd).
                log::warn!("SIGTERM ignored: containers or a pod are still served; containerd shuts shims down through the API");
            }
            _ = shim.shutdown.notified() => break,
        }
    }
    log::info!("tent shim shutting down");
    let _ = server.shutdown().await;
    if !events.flush(EVENTS_AT_EXIT).await {
        log::warn!("exiting with events containerd did not take within {EVENTS_AT_EXIT:?}");
    }
    // A summary still being computed (a container that lived a few ms) is
    // finished, within a bound: the exit is not on any start path.
    let _ =
        tokio::task::spawn_blocking(|| crate::summary::drain(std::time::Duration::from_secs(2)))
            .await;
    Ok(())
}

/// Collects every exited child and routes it to its task: the one place that waits.
async fn reap(shim: &Arc<Shim>) {
    loop {
        // Never collect a child that a concurrent `Command::spawn` may still wait for.
        let reaped = {
            let _guard = tent_runtime::reaper_guard();
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        };
        match reaped {
            Ok(WaitStatus::Exited(pid, code)) => shim.on_exit(pid.as_raw(), code as u32),
            Ok(WaitStatus::Signaled(pid, sig, _)) => shim.on_exit(pid.as_raw(), 128 + sig as u32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => {
                log::warn!("waitpid: {e}");
                return;
            }
        }
    }
}
