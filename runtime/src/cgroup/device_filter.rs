//! The cgroup v2 device controller: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`,
//! attached to the container's cgroup, that the kernel runs on every mknod and every open of a
//! device node and that allows exactly what v1's `devices.allow` list ([`super::v1::DEVICE_ALLOW`])
//! allows: mknod of any node, read and write of the standard nodes of the container's /dev.
//!
//! Plan, then apply: the rules parse into [`Rule`]s, [`program`] turns them into instructions
//! (plain data, unit-tested with a small interpreter), and [`attach`] loads them with `bpf(2)` and
//! attaches them with `BPF_F_ALLOW_MULTI`, so a program an ancestor cgroup has keeps applying too
//! (the kernel allows an access only when every program on the path allows it).
//!
//! The program has the shape runc and youki emit: load the context into registers, then one
//! block per rule that jumps to the next block on any mismatch and returns 1 at its end; 0 at the
//! very end (default deny).
//!
//! # Caveats
//! The program lives as long as the cgroup it is attached to: removing the cgroup removes it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `bpf_cgroup_dev_ctx.access_type`: the device type in the low 16 bits ...
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
/// ... and the requested access in the high 16 bits.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("invalid device rule {rule:?}: {reason}")]
    BadRule { rule: String, reason: &'static str },
    #[error("loading the device filter program: {source}{}", verifier_log(.log))]
    Load {
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn verifier_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {})", log.trim())
    }
}

/// One allow rule: a device type, a major and minor number (`None` for `*`), and the accesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub dev_type: u32,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl Rule {
    /// Parses a v1 `devices.allow` line such as `c 1:3 rwm` or `b *:* m`.
    pub fn parse(line: &str) -> Result<Self, DeviceFilterError> {
        let bad = |reason| DeviceFilterError::BadRule {
            rule: line.to_string(),
            reason,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [kind, numbers, access] = fields[..] else {
            return Err(bad("expected TYPE MAJOR:MINOR ACCESS"));
        };
        let dev_type = match kind {
            "c" => DEV_CHAR,
            "b" => DEV_BLOCK,
            _ => return Err(bad("the type must be c or b")),
        };
        let number = |n: &str| match n {
            "*" => Ok(None),
            n => n.parse().map(Some).map_err(|_| bad("bad device number")),
        };
        let (major, minor) = numbers.split_once(':').ok_or(bad("expected MAJOR:MINOR"))?;
        let mut bits = 0;
        for c in access.chars() {
            bits |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return Err(bad("access is made of r, w and m")),
            };
        }
        Ok(Self {
            dev_type,
            major: number(major)?,
            minor: number(minor)?,
            access: bits,
        })
    }
}

/// The rules of [`super::v1::DEVICE_ALLOW`], the same list both cgroup versions enforce.
pub fn default_rules() -> Vec<Rule> {
    super::v1::DEVICE_ALLOW
        .iter()
        .map(|line| Rule::parse(line).expect("the built-in device rules parse"))
        .collect()
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

/// The opcodes the program uses (`linux/bpf_common.h`, `linux/bpf.h`).
pub mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
    pub const LDX_W: u8 = 0x61;
    /// `BPF_ALU | BPF_AND | BPF_K`: dst &= imm (32-bit).
    pub const AND32_K: u8 = 0x54;
    /// `BPF_ALU | BPF_RSH | BPF_K`: dst >>= imm (32-bit).
    pub const RSH32_K: u8 = 0x74;
    /// `BPF_ALU | BPF_MOV | BPF_K` and `BPF_X`: dst = imm, dst = src (32-bit).
    pub const MOV32_K: u8 = 0xb4;
    pub const MOV32_X: u8 = 0xbc;
    /// `BPF_JMP | BPF_JNE | BPF_K` and `BPF_X`: if dst != imm (src) skip `off` instructions.
    pub const JNE_K: u8 = 0x55;
    pub const JNE_X: u8 = 0x5d;
    /// `BPF_JMP | BPF_EXIT`: return r0.
    pub const EXIT: u8 = 0x95;
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel reads: code, dst in the low nibble and src in the high one,
    /// then offset and immediate in native byte order.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

// Registers: r1 holds the context; r2 type, r3 access, r4 major, r5 minor once loaded; r0 result.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// The program allowing exactly `rules` (first match allows; nothing matches: deny).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        Insn::new(op::LDX_W, TYPE, R1, 0, 0),
        Insn::new(op::AND32_K, TYPE, 0, 0, 0xffff),
        Insn::new(op::LDX_W, ACCESS, R1, 0, 0),
        Insn::new(op::RSH32_K, ACCESS, 0, 0, 16),
        Insn::new(op::LDX_W, MAJOR, R1, 4, 0),
        Insn::new(op::LDX_W, MINOR, R1, 8, 0),
    ];
    for rule in rules {
        prog.extend(rule_block(rule));
    }
    prog.extend([
        Insn::new(op::MOV32_K, R0, 0, 0, 0),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ]);
    prog
}

/// The checks of one rule: each jumps past the block on a mismatch; the block ends in "allow".
fn rule_block(rule: &Rule) -> Vec<Insn> {
    // (code, dst, src, imm) of each check, the jump offsets filled in once the length is known.
    let mut checks: Vec<(u8, u8, u8, i32)> = vec![(op::JNE_K, TYPE, 0, rule.dev_type as i32)];
    let mut prefix = Vec::new();
    if rule.access & ACC_ALL != ACC_ALL {
        // Requested accesses must all be among the rule's: (access & allowed) == access.
        prefix.push(Insn::new(op::MOV32_X, R1, ACCESS, 0, 0));
        prefix.push(Insn::new(op::AND32_K, R1, 0, 0, rule.access as i32));
        checks.push((op::JNE_X, R1, ACCESS, 0));
    }
    if let Some(major) = rule.major {
        checks.push((op::JNE_K, MAJOR, 0, major as i32));
    }
    if let Some(minor) = rule.minor {
        checks.push((op::JNE_K, MINOR, 0, minor as i32));
    }
    let allow = [
        Insn::new(op::MOV32_K, R0, 0, 0, 1),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ];
    let len = prefix.len() + checks.len() + allow.len();
    let mut block = Vec::with_capacity(len);
    for (i, (code, dst, src, imm)) in checks.into_iter().enumerate() {
        if i == 1 && !prefix.is_empty() {
            block.append(&mut prefix);
        }
        // A jump skips the instructions after it up to the end of the block.
        let off = (len - block.len() - 1) as i16;
        block.push(Insn::new(code, dst, src, off, imm));
    }
    block.extend(allow);
    block
}

/// Loads `prog` and attaches it to the cgroup directory `cgroup` (alongside any already there).
pub fn attach(cgroup: &Path, prog: &[Insn]) -> Result<(), DeviceFilterError> {
    let dir = std::fs::File::open(cgroup).map_err(|source| DeviceFilterError::Io {
        action: "opening the cgroup",
        path: cgroup.to_path_buf(),
        source,
    })?;
    let loaded = load(prog)?;
    prog_attach(&dir, &loaded).map_err(|source| DeviceFilterError::Io {
        action: "attaching the device filter to",
        path: cgroup.to_path_buf(),
        source,
    })
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`; the kernel zero-fills the rest.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The fields of `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a repr(C) prefix of `union bpf_attr` for `cmd`, valid for the whole
    // call, and its size is passed along; every pointer inside it points to live memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn load(prog: &[Insn]) -> Result<OwnedFd, DeviceFilterError> {
    // Without a log first: with one, a verbose verifier that fills the buffer fails the load.
    load_with_log(prog, &mut []).or_else(|_| load_with_log(prog, &mut vec![0u8; 1 << 16]))
}

/// Loads `prog`; when `log` is not empty the verifier writes its findings there.
fn load_with_log(prog: &[Insn], log: &mut [u8]) -> Result<OwnedFd, DeviceFilterError> {
    let code: Vec<u8> = prog.iter().flat_map(|i| i.to_bytes()).collect();
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"forge_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(source) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(DeviceFilterError::Load {
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
                source,
            })
        }
    }
}

fn prog_attach(cgroup: &impl AsRawFd, prog: &impl AsRawFd) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Runs `prog` on a device access as the kernel would, for tests: what it returns (1 = allow).
#[cfg(test)]
fn evaluate(prog: &[Insn], dev_type: char, major: u32, minor: u32, access: &str) -> u32 {
    let dev_type = if dev_type == 'b' { DEV_BLOCK } else { DEV_CHAR };
    let access = Rule::parse(&format!("c 0:0 {access}")).map_or(0, |r| r.access);
    let ctx = [dev_type | (access << 16), major, minor];
    let mut reg = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (d, s) = (i.dst as usize, i.src as usize);
        pc += 1;
        match i.code {
            op::LDX_W => reg[d] = u64::from(ctx[i.off as usize / 4]),
            op::AND32_K => reg[d] = (reg[d] as u32 & i.imm as u32).into(),
            op::RSH32_K => reg[d] = (reg[d] as u32 >> i.imm).into(),
            op::MOV32_K => reg[d] = u64::from(i.imm as u32),
            op::MOV32_X => reg[d] = u64::from(reg[s] as u32),
            op::JNE_K if reg[d] != u64::from(i.imm as u32) => pc += i.off as usize,
            op::JNE_X if reg[d] != reg[s] => pc += i.off as usize,
            op::JNE_K | op::JNE_X => {}
            op::EXIT => return reg[R0 as usize] as u32,
            code => panic!("unknown opcode {code:#x} at {}", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_devices_allow_lines() {
        assert_eq!(
            Rule::parse("c 1:3 rwm").unwrap(),
            Rule {
                dev_type: DEV_CHAR,
                major: Some(1),
                minor: Some(3),
                access: ACC_ALL
            }
        );
        let any_block = Rule::parse("b *:* m").unwrap();
        assert_eq!((any_block.major, any_block.minor), (None, None));
        assert_eq!(any_block.access, ACC_MKNOD);
        for bad in ["a", "x 1:3 rwm", "c 1 rwm", "c 1:z r", "c 1:3 rwx"] {
            let err = Rule::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn instructions_encode_as_struct_bpf_insn() {
        let jump = Insn::new(op::JNE_X, R1, ACCESS, 3, 0).to_bytes();
        assert_eq!(jump[0], 0x5d);
        assert_eq!(jump[1], 0x31, "dst in the low nibble, src in the high one");
        assert_eq!(i16::from_ne_bytes([jump[2], jump[3]]), 3);
        let mov = Insn::new(op::MOV32_K, R0, 0, 0, -1).to_bytes();
        assert_eq!(&mov[4..], &(-1i32).to_ne_bytes());
    }

    #[test]
    fn a_full_rule_block_jumps_to_the_next_rule_on_every_mismatch() {
        let rule = Rule::parse("c 1:3 r").unwrap();
        let block = rule_block(&rule);
        let codes: Vec<u8> = block.iter().map(|i| i.code).collect();
        assert_eq!(
            codes,
            [
                op::JNE_K,
                op::MOV32_X,
                op::AND32_K,
                op::JNE_X,
                op::JNE_K,
                op::JNE_K,
                op::MOV32_K,
                op::EXIT
            ]
        );
        // Each jump lands just past the block's final exit.
        for (at, insn) in block.iter().enumerate() {
            if matches!(insn.code, op::JNE_K | op::JNE_X) {
                assert_eq!(at + 1 + insn.off as usize, block.len(), "jump at {at}");
            }
        }
        // A wildcard rule with every access needs only the type check.
        assert_eq!(rule_block(&Rule::parse("c *:* rwm").unwrap()).len(), 3);
    }

    #[test]
    fn the_default_program_allows_what_v1_allows_and_nothing_else() {
        let prog = program(&default_rules());
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            for access in ["r", "w", "rw", "m", "rwm"] {
                assert_eq!(
                    evaluate(&prog, 'c', major, minor, access),
                    1,
                    "c {major}:{minor} {access}"
                );
            }
        }
        assert_eq!(evaluate(&prog, 'c', 136, 4, "rw"), 1, "a pts");
        // mknod of anything, as v1's `m` rules allow; opening it is what fails.
        assert_eq!(evaluate(&prog, 'b', 8, 0, "m"), 1);
        assert_eq!(evaluate(&prog, 'c', 10, 200, "m"), 1);
        for (kind, major, minor) in [
            ('b', 8, 0),
            ('b', 7, 0),
            ('c', 1, 1),
            ('c', 10, 200),
            ('c', 4, 1),
            ('b', 1, 3),
        ] {
            for access in ["r", "w", "rw", "rm"] {
                assert_eq!(
                    evaluate(&prog, kind, major, minor, access),
                    0,
                    "{kind} {major}:{minor} {access}"
                );
            }
        }
        assert_eq!(evaluate(&program(&[]), 'c', 1, 3, "r"), 0, "no rules: deny");
    }
}
