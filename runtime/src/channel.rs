//! The set-up channel between the caller (the monitor) and the container's init process: a
//! `SOCK_SEQPACKET` socketpair carrying one JSON message per packet, and an fd (a pty master, an
//! idmapped layer) by `SCM_RIGHTS`.
//!
//! The order of messages is the protocol:
//! 1. monitor → init: `Spec`
//! 2. init (stage 1) → monitor: `Pid` of the container's PID 1, or `Failed`
//! 3. with a user namespace only, monitor → PID 1: one `Layer` per image layer (an idmapped,
//!    detached mount fd), then `Mapped` once `uid_map`/`gid_map` are written
//! 4. PID 1 → monitor: `Pty` (with the master fd, only with a tty), then `Ready` or `Failed`
//! 5. monitor → PID 1: `Go` once cgroups and network are in place
//! 6. PID 1 → monitor: nothing (the socket closes on a successful exec) or `Failed`
//!
//! `forge exec` uses the same socket with the joining process (see [`crate::init::join`]): the
//! caller sends `Join` before the process even starts (it waits in the socket's queue), so no
//! spec is on a command line. With a tty the joining process's forked child then sends `Pty`
//! with the master, and the socket closes on exec; a close without `Pty` means joining failed
//! (the process said why on its stderr).
//!
//! The detached monitor (see [`crate::monitor`]) has a socket of the same kind to its caller,
//! with messages of its own ([`Channel::send_as`], [`Channel::recv_as`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::init::join::JoinSpec;
use crate::spec::InitSpec;

/// Exit codes as Docker uses them for its own failures.
pub const EXIT_FORGE_ERROR: i32 = 125;
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    Spec(Box<InitSpec>),
    /// What the joining process of `forge exec` needs to know about the container.
    Join(Box<JoinSpec>),
    Pid(i32),
    Pty,
    Ready,
    Go,
    /// An idmapped image layer for PID 1 (the fd rides along), in overlay order.
    Layer,
    /// An idmapped bind or volume for PID 1 (the fd rides along), one for each of its mounts
    /// that [`crate::spec::InitMount::made_by_caller`], in mount order.
    MountTree,
    /// PID 1's user namespace maps are written and every layer and mount tree is sent.
    Mapped,
    /// Set-up or exec failed: the exit code the container ends with, and why.
    Failed {
        code: i32,
        message: String,
    },
}

const MAX_MESSAGE: usize = 256 * 1024;

/// Both ends of a new channel; the second is meant for the init process (not close-on-exec).
pub fn pair() -> io::Result<(Channel, OwnedFd)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    Ok((Channel { fd: ours }, theirs))
}

#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Message) -> io::Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Message, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        self.send_as(msg, fd)
    }

    /// The next message, or `None` when the other side closed the socket (e.g. it exec'ed).
    pub fn recv(&self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        self.recv_as()
    }

    /// Sends one message of any protocol on this socket (one packet), with an optional fd.
    pub fn send_as<M: Serialize>(&self, msg: &M, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let raw = fd.map(|f| [f.as_raw_fd()]);
        let cmsgs: Vec<ControlMessage> = raw
            .as_ref()
            .map(|r| ControlMessage::ScmRights(r))
            .into_iter()
            .collect();
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &cmsgs,
            MsgFlags::empty(),
            None,
        )
        .map_err(io::Error::from)?;
        Ok(())
    }

    /// The next message of protocol `M`, or `None` when the other side closed the socket.
    pub fn recv_as<M: DeserializeOwned>(&self) -> io::Result<Option<(M, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            // SAFETY: SCM_RIGHTS installed these fds in our table just now; we are their only owner.
                            fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..len]).map_err(io::Error::other)?;
        Ok(Some((msg, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross_the_socket() {
        let (a, b) = pair().unwrap();
        let b = Channel::from_fd(b);
        a.send(&Message::Pid(42)).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsFd;
        a.send_with_fd(&Message::Pty, Some(file.as_fd())).unwrap();
        assert!(matches!(b.recv().unwrap(), Some((Message::Pid(42), None))));
        assert!(matches!(b.recv().unwrap(), Some((Message::Pty, Some(_)))));
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }

    #[test]
    fn a_message_sent_before_the_peer_reads_outlives_the_senders_close() {
        // How the join spec reaches `forge exec`'s joining process: queued before it starts.
        let (a, b) = pair().unwrap();
        a.send(&Message::Ready).unwrap();
        drop(a);
        let b = Channel::from_fd(b);
        assert!(matches!(b.recv().unwrap(), Some((Message::Ready, None))));
        assert!(b.recv().unwrap().is_none());
    }
}
