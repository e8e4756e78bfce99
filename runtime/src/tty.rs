//! The host side of `forge run -t` and `forge exec -t`: the user's terminal in raw mode, bytes
//! copied both ways between it and the container's pty master, window size forwarded on
//! SIGWINCH, and the terminal restored afterwards whatever happens. Without `-i` nothing is read
//! from stdin and the terminal stays as it is (as Docker does), so Ctrl-C stops Forge itself.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Puts a terminal into raw mode and restores its settings on drop.
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// `None` when `fd` is not a terminal (nothing to change).
    pub fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

/// The window size of terminal `fd` as (rows, columns); `None` when it is not a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain old data; all-zero is valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into our local; the fd is open.
    let got = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (got == 0).then_some((size.ws_row, size.ws_col))
}

/// Sets the window size of pty `fd` (either side) to (rows, columns).
pub fn set_window_size(fd: BorrowedFd<'_>, (rows, cols): (u16, u16)) {
    // SAFETY: winsize is plain old data; all-zero is valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    size.ws_row = rows;
    size.ws_col = cols;
    // SAFETY: TIOCSWINSZ reads the winsize from our local; the fd is open.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// The window size of the terminal this process runs in (stdin's, else stdout's): what a
/// container's pty starts with, before its command can look.
pub fn caller_window_size() -> Option<(u16, u16)> {
    let (stdin, stdout) = (io::stdin(), io::stdout());
    window_size(window_source(stdin.as_fd(), stdout.as_fd()))
}

/// Copies the window size of terminal `from` to pty `to`.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some(size) = window_size(from) {
        set_window_size(to, size);
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The terminal whose window size the container's pty follows: stdin, else stdout.
fn window_source<'a>(stdin: BorrowedFd<'a>, stdout: BorrowedFd<'a>) -> BorrowedFd<'a> {
    match nix::unistd::isatty(stdin.as_raw_fd()) {
        Ok(true) => stdin,
        _ => stdout,
    }
}

/// Copies master → stdout, and stdin → master when `interactive`, until the container side
/// hangs up.
pub fn proxy(master: &OwnedFd, interactive: bool) -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let _raw = interactive.then(|| RawMode::enter(stdin.as_fd()));
    let size_from = window_source(stdin.as_fd(), stdout.as_fd());
    copy_window_size(size_from, master.as_fd());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_winch),
            nix::sys::signal::SaFlags::SA_RESTART,
            nix::sys::signal::SigSet::empty(),
        );
        let _ = nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &action);
    }
    let mut buf = [0u8; 8192];
    let mut stdin_open = interactive;
    loop {
        if WINCH.swap(false, Ordering::Relaxed) {
            copy_window_size(size_from, master.as_fd());
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let master_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ev = fds
            .get(1)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if master_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()), // every slave closed
                Ok(n) => write_all(stdout.as_fd(), &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if stdin_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    // End of input: send EOF (Ctrl-D) to the container, as a terminal would.
                    let _ = write_all(master.as_fd(), &[4]);
                    stdin_open = false;
                }
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}
