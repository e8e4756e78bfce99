//! A pty pair that the test holds the master of, with `forge run -it` or `forge exec -it` on the
//! slave as the session leader, driven as a user's terminal would drive it: typing lines,
//! waiting for text, resizing the window, reading the outer terminal's settings.
//!
//! # Caveats
//! The pty is opened close-on-exec so that no other test's child inherits it; dropping a
//! [`Terminal`] kills a forge that is still running.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::PtyMaster;
use nix::sys::termios::{tcgetattr, Termios};

use super::{wait_with_timeout, Forge};

/// The prompt of root's shell in the `host` image.
pub const PROMPT: &str = "# ";
/// How long the terminal may take to show what a test waits for.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `forge run -it` on the slave side of a pty that the test holds the master of.
pub struct Terminal {
    pub master: PtyMaster,
    slave: File,
    /// The forge process on the slave.
    pub child: Child,
    /// Everything read from the master so far, and how far `expect` has matched.
    pub seen: String,
    cursor: usize,
}

/// Sets the window size of the terminal `fd` (TIOCSWINSZ).
pub fn set_window_size(fd: &impl AsRawFd, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which points at a live local.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

impl Terminal {
    /// Opens a pty of `rows` x `cols` (close-on-exec, so no other test's child inherits it),
    /// and returns it with the outer terminal's settings before anything touched them.
    pub fn open(rows: u16, cols: u16) -> (PtyMaster, File, Termios) {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .expect("posix_openpt");
        nix::pty::grantpt(&master).expect("grantpt");
        nix::pty::unlockpt(&master).expect("unlockpt");
        let path = nix::pty::ptsname_r(&master).expect("ptsname");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .expect("opening the pty slave");
        set_window_size(&master, rows, cols);
        let termios = tcgetattr(slave.as_fd()).expect("tcgetattr on the outer terminal");
        (master, slave, termios)
    }

    /// Starts `forge ARGS...` on the slave as the session leader with the pty as its
    /// controlling terminal, as a login shell's child would be.
    pub fn start_on(
        (master, slave, _): (PtyMaster, File, Termios),
        forge: &Forge,
        args: &[&str],
    ) -> Self {
        let stdio = || Stdio::from(OwnedFd::from(slave.try_clone().expect("dup of the slave")));
        let mut cmd = forge.command(args);
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: setsid and ioctl are async-signal-safe; the closure allocates nothing. It runs
        // after stdio is in place, so fd 0 is the slave that becomes the controlling terminal.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning forge run -it");
        Self {
            master,
            slave,
            child,
            seen: String::new(),
            cursor: 0,
        }
    }

    /// The usual interactive shell, waiting at its first prompt.
    pub fn shell(forge: &Forge, rows: u16, cols: u16) -> Self {
        let mut term = Self::start_on(
            Self::open(rows, cols),
            forge,
            &["run", "-it", "--name", "tty", "host", "sh"],
        );
        term.expect(PROMPT);
        term
    }

    /// `forge exec -it box sh` in a running container `box`, waiting at its first prompt.
    pub fn exec_shell(forge: &Forge, rows: u16, cols: u16) -> Self {
        forge.ok(&["run", "-d", "--name", "box", "host", "sleep", "1000"]);
        let mut term = Self::start_on(Self::open(rows, cols), forge, &["exec", "-it", "box", "sh"]);
        term.expect(PROMPT);
        term
    }

    /// Reads whatever the master has within `timeout`; false when nothing came.
    fn read_some(&mut self, timeout: Duration) -> bool {
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, ms).unwrap_or(0) == 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            _ => false,
        }
    }

    /// Waits for `text` in the output after the last match; fails the test after a timeout.
    pub fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(at) = self.seen[self.cursor..].find(text) {
                self.cursor += at + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {text:?}; the terminal showed:\n{:?}",
                &self.seen[self.cursor..]
            );
            self.read_some(left);
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let written = nix::unistd::write(&self.master, bytes).expect("writing to the pty");
        assert_eq!(written, bytes.len());
    }

    /// Types a line, as a user would, ending it with Enter.
    pub fn line(&mut self, text: &str) {
        self.send(format!("{text}\r").as_bytes());
    }

    /// Waits for forge to exit, draining the pty meanwhile, and returns its exit code.
    pub fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().expect("waiting for forge").is_none()
            && Instant::now() < deadline
        {
            self.read_some(Duration::from_millis(20));
        }
        wait_with_timeout(&mut self.child, Duration::from_millis(1), "forge run -it")
    }

    pub fn termios(&self) -> Termios {
        tcgetattr(self.slave.as_fd()).expect("tcgetattr on the outer terminal")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
