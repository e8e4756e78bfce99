//! Forge's nftables rules: generated from plain data ([`Ruleset`]) and applied through netlink
//! (libnftnl, via the `nftnl` crate) as ONE batch that replaces table `ip forge` entirely.
//!
//! The kernel runs a batch as a transaction: either all of it takes effect or none of it does,
//! so a failed apply leaves the previous table untouched, and a crash can never leave half a
//! ruleset or duplicated rules behind. No other table is ever read or changed.
//!
//! The rules are first built as plain data (a list of `Stmt`s per rule), which both
//! [`describe`] prints and the netlink encoder turns into nftnl expressions: what the tests read
//! is what the kernel gets.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};

use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Immediate, Lookup, Masquerade, Meta, Nat, NatType, Payload,
    Register, TcpHeaderField, TransportHeaderField, UdpHeaderField, Verdict,
};
use nftnl::set::Set;
use nftnl::{Batch, Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};

use crate::ipam::Subnet;

/// Forge's own table, family `ip` (IPv4).
pub const TABLE: &str = "forge";
const TABLE_C: &CStr = c"forge";

/// Marks DNAT'd traffic that comes from the host itself or from a Forge bridge: it must be
/// masqueraded (so replies come back through the host) and accepted by the forward chain.
pub const MARK: u32 = 0x4647;

/// Named set of the host's own addresses: "destined to this host" without a `fib` expression,
/// which nftnl 0.9.4 lacks.
const HOST_ADDRS: &str = "host_addrs";
const HOST_ADDRS_C: &CStr = c"host_addrs";

/// Interface names are at most IFNAMSIZ - 1 bytes; the kernel keeps them NUL-padded to IFNAMSIZ.
const IFNAMSIZ: usize = 16;

/// How long to wait for the kernel's answer to a batch before giving up.
const REPLY_TIMEOUT_SECS: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One Forge network: its bridge and subnet. An internal network never reaches the outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
}

/// One published port: traffic to `host_ip` (or any host address) : `host_port` goes to the
/// container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// Everything Forge's table is built from. `host_addrs` are the host's local IPv4 addresses,
/// 127.0.0.1 included: a port published without a host IP answers on all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<NetRule>,
    pub ports: Vec<PortRule>,
    pub host_addrs: Vec<Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "applying Forge's nftables table 'forge': bridge name {0:?} is not a valid interface \
         name (1 to 15 bytes, no '/', NUL or whitespace)"
    )]
    BadBridgeName(String),
    #[error("applying Forge's nftables table 'forge': bridge {0:?} belongs to two networks")]
    DuplicateBridge(String),
    #[error(
        "applying Forge's nftables table 'forge': subnet {0} is not a network address with a \
         prefix from 1 to 32"
    )]
    BadSubnet(Subnet),
    #[error("applying Forge's nftables table 'forge': {step}: {source}")]
    Apply {
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("removing Forge's nftables table 'forge': {step}: {source}")]
    Remove {
        step: String,
        #[source]
        source: io::Error,
    },
}

/// Replaces table `ip forge` with the rules for `rules`, in one atomic batch. Works whether or
/// not the table exists; applying the same rules twice gives the same table.
pub fn apply(rules: &Ruleset) -> Result<(), NftError> {
    validate(rules)?;
    let mut msgs = Msgs::new();
    write_ruleset(&mut msgs, rules);
    msgs.send()
        .map_err(|(step, source)| NftError::Apply { step, source })
}

/// Deletes table `ip forge` if it exists, in one batch. Other tables are left alone.
pub fn remove() -> Result<(), NftError> {
    let mut msgs = Msgs::new();
    let table = Table::new(TABLE_C, ProtoFamily::Ipv4);
    // Adding first makes the delete succeed whether or not the table existed.
    msgs.add(
        &table,
        MsgType::Add,
        "adding table ip forge (so it surely exists)",
    );
    msgs.add(&table, MsgType::Del, "deleting table ip forge");
    msgs.send()
        .map_err(|(step, source)| NftError::Remove { step, source })
}

/// The rules [`apply`] installs, one line per rule, as `CHAIN: RULE` with RULE written as
/// `nft list table ip forge` prints it.
pub fn describe(rules: &Ruleset) -> Vec<String> {
    generate(rules).iter().map(RuleSpec::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// The rules as plain data.

/// The four base chains of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ChainKind {
    Prerouting,
    Output,
    Postrouting,
    Forward,
}

impl ChainKind {
    const ALL: [ChainKind; 4] = [
        ChainKind::Prerouting,
        ChainKind::Output,
        ChainKind::Postrouting,
        ChainKind::Forward,
    ];

    fn name(self) -> &'static CStr {
        match self {
            ChainKind::Prerouting => c"prerouting",
            ChainKind::Output => c"output",
            ChainKind::Postrouting => c"postrouting",
            ChainKind::Forward => c"forward",
        }
    }

    /// Type, hook and priority: DNAT before routing (-100, "dstnat"), masquerade after it
    /// (100, "srcnat"), filtering at the usual filter priority.
    fn hook(self) -> (ChainType, Hook, i32) {
        match self {
            ChainKind::Prerouting => (ChainType::Nat, Hook::PreRouting, -100),
            ChainKind::Output => (ChainType::Nat, Hook::Out, -100),
            ChainKind::Postrouting => (ChainType::Nat, Hook::PostRouting, 100),
            ChainKind::Forward => (ChainType::Filter, Hook::Forward, 0),
        }
    }
}

/// One match or action of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stmt<'a> {
    IifName { name: &'a str, equal: bool },
    OifName { name: &'a str, equal: bool },
    Saddr(Subnet),
    Daddr(Ipv4Addr),
    DaddrIsHost,
    Dport(Proto, u16),
    CtEstablishedOrRelated,
    HasMark,
    SetMark,
    Dnat(Ipv4Addr, u16),
    Masquerade,
    Accept,
    Drop,
}

struct RuleSpec<'a> {
    chain: ChainKind,
    stmts: Vec<Stmt<'a>>,
}

impl std::fmt::Display for Stmt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = |equal: bool| if equal { "" } else { "!= " };
        match self {
            Stmt::IifName { name, equal } => write!(f, "iifname {}\"{name}\"", op(*equal)),
            Stmt::OifName { name, equal } => write!(f, "oifname {}\"{name}\"", op(*equal)),
            Stmt::Saddr(subnet) if subnet.prefix == 32 => write!(f, "ip saddr {}", subnet.network),
            Stmt::Saddr(subnet) => write!(f, "ip saddr {subnet}"),
            Stmt::Daddr(ip) => write!(f, "ip daddr {ip}"),
            Stmt::DaddrIsHost => write!(f, "ip daddr @{HOST_ADDRS}"),
            Stmt::Dport(proto, port) => write!(f, "{} dport {port}", proto.name()),
            Stmt::CtEstablishedOrRelated => write!(f, "ct state established,related"),
            Stmt::HasMark => write!(f, "meta mark {MARK:#010x}"),
            Stmt::SetMark => write!(f, "meta mark set {MARK:#010x}"),
            Stmt::Dnat(ip, port) => write!(f, "dnat to {ip}:{port}"),
            Stmt::Masquerade => write!(f, "masquerade"),
            Stmt::Accept => write!(f, "accept"),
            Stmt::Drop => write!(f, "drop"),
        }
    }
}

impl std::fmt::Display for RuleSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.chain.name().to_string_lossy())?;
        for stmt in &self.stmts {
            write!(f, " {stmt}")?;
        }
        Ok(())
    }
}

/// All rules, chain by chain, in the order they are installed.
fn generate(rules: &Ruleset) -> Vec<RuleSpec<'_>> {
    let mut all = prerouting(rules);
    all.extend(output(rules));
    all.extend(postrouting(rules));
    all.extend(forward(rules));
    all
}

fn rule(chain: ChainKind, stmts: Vec<Stmt<'_>>) -> RuleSpec<'_> {
    RuleSpec { chain, stmts }
}

/// Where a published port listens: its host IP, else any of the host's addresses.
fn port_dest(port: &PortRule) -> Stmt<'static> {
    match port.host_ip {
        Some(ip) => Stmt::Daddr(ip),
        None => Stmt::DaddrIsHost,
    }
}

/// Published ports, for packets arriving from outside or from a container. Those from a Forge
/// bridge get the mark, so they are masqueraded and the reply returns through the host
/// (hairpin) even when the target sits on the same bridge.
fn prerouting(rules: &Ruleset) -> Vec<RuleSpec<'_>> {
    let mut out = Vec::new();
    for p in &rules.ports {
        let dnat = Stmt::Dnat(p.container_ip, p.container_port);
        let dport = Stmt::Dport(p.proto, p.host_port);
        for n in &rules.networks {
            let iif = Stmt::IifName {
                name: &n.bridge,
                equal: true,
            };
            let stmts = vec![
                iif,
                port_dest(p),
                dport.clone(),
                Stmt::SetMark,
                dnat.clone(),
            ];
            out.push(rule(ChainKind::Prerouting, stmts));
        }
        out.push(rule(ChainKind::Prerouting, vec![port_dest(p), dport, dnat]));
    }
    out
}

/// Published ports, for connections the host itself opens (127.0.0.1 included); marked so
/// that postrouting masquerades them.
fn output(rules: &Ruleset) -> Vec<RuleSpec<'_>> {
    let port_rule = |p: &PortRule| {
        let stmts = vec![
            port_dest(p),
            Stmt::Dport(p.proto, p.host_port),
            Stmt::SetMark,
            Stmt::Dnat(p.container_ip, p.container_port),
        ];
        rule(ChainKind::Output, stmts)
    };
    rules.ports.iter().map(port_rule).collect()
}

/// Masquerade marked (DNAT'd) traffic, and traffic leaving a non-internal network's subnet
/// through any other interface.
fn postrouting(rules: &Ruleset) -> Vec<RuleSpec<'_>> {
    let mut out = vec![rule(
        ChainKind::Postrouting,
        vec![Stmt::HasMark, Stmt::Masquerade],
    )];
    for n in rules.networks.iter().filter(|n| !n.internal) {
        let oif = Stmt::OifName {
            name: &n.bridge,
            equal: false,
        };
        let stmts = vec![Stmt::Saddr(n.subnet), oif, Stmt::Masquerade];
        out.push(rule(ChainKind::Postrouting, stmts));
    }
    out
}

/// Accept established flows and published ports; keep internal networks in; keep networks
/// apart; let non-internal networks out and in. Anything else is for other tables to judge
/// (policy accept: Forge does not firewall the host).
fn forward(rules: &Ruleset) -> Vec<RuleSpec<'_>> {
    let chain = ChainKind::Forward;
    let iif = |name, equal| Stmt::IifName { name, equal };
    let oif = |name, equal| Stmt::OifName { name, equal };
    let mut out = vec![
        rule(chain, vec![Stmt::CtEstablishedOrRelated, Stmt::Accept]),
        rule(chain, vec![Stmt::HasMark, Stmt::Accept]),
    ];
    for n in rules.networks.iter().filter(|n| n.internal) {
        let br = n.bridge.as_str();
        out.push(rule(chain, vec![iif(br, true), oif(br, false), Stmt::Drop]));
        out.push(rule(chain, vec![oif(br, true), iif(br, false), Stmt::Drop]));
    }
    for a in &rules.networks {
        for b in rules.networks.iter().filter(|b| b.bridge != a.bridge) {
            let stmts = vec![iif(&a.bridge, true), oif(&b.bridge, true), Stmt::Drop];
            out.push(rule(chain, stmts));
        }
    }
    for n in rules.networks.iter().filter(|n| !n.internal) {
        out.push(rule(chain, vec![iif(&n.bridge, true), Stmt::Accept]));
        out.push(rule(chain, vec![oif(&n.bridge, true), Stmt::Accept]));
    }
    out
}

/// Rejects what the kernel would misread rather than refuse: a too-long name would silently
/// never match, a duplicate bridge would isolate a network from itself.
fn validate(rules: &Ruleset) -> Result<(), NftError> {
    let mut seen = BTreeSet::new();
    for n in &rules.networks {
        let name = n.bridge.as_str();
        let bad_char = |c: char| c == '/' || c == '\0' || c.is_whitespace();
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(bad_char) {
            return Err(NftError::BadBridgeName(n.bridge.clone()));
        }
        if !seen.insert(name) {
            return Err(NftError::DuplicateBridge(n.bridge.clone()));
        }
        let s = n.subnet;
        if !(1..=32).contains(&s.prefix) || u32::from(s.network) & !s.mask() != 0 {
            return Err(NftError::BadSubnet(s));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Encoding as nftnl objects.

/// The whole replacement: make sure the table exists, delete it (with everything in it), then
/// build it again. The kernel sees one transaction.
fn write_ruleset(msgs: &mut Msgs, rules: &Ruleset) {
    let table = Table::new(TABLE_C, ProtoFamily::Ipv4);
    msgs.add(
        &table,
        MsgType::Add,
        "adding table ip forge (so it surely exists)",
    );
    msgs.add(&table, MsgType::Del, "deleting the old table ip forge");
    msgs.add(&table, MsgType::Add, "adding table ip forge");

    let chains: BTreeMap<ChainKind, Chain<'_>> = ChainKind::ALL
        .iter()
        .map(|&kind| (kind, base_chain(&table, kind)))
        .collect();
    for (kind, chain) in &chains {
        let label = format!("adding chain {}", kind.name().to_string_lossy());
        msgs.add(chain, MsgType::Add, label);
    }

    // Elements are added with NLM_F_EXCL: a duplicate address would fail the batch.
    let addrs: BTreeSet<Ipv4Addr> = rules.host_addrs.iter().copied().collect();
    let mut set = Set::<Ipv4Addr>::new_named(HOST_ADDRS_C, 1, &table, ProtoFamily::Ipv4);
    for addr in &addrs {
        set.add(addr);
    }
    msgs.add(&set, MsgType::Add, format!("adding set {HOST_ADDRS}"));
    for elems in set.elems_iter() {
        msgs.add(
            &elems,
            MsgType::Add,
            format!("adding the elements of set {HOST_ADDRS}"),
        );
    }

    for spec in generate(rules) {
        let mut rule = Rule::new(&chains[&spec.chain]);
        for stmt in &spec.stmts {
            encode(&mut rule, stmt, &set);
        }
        msgs.add(&rule, MsgType::Add, format!("adding rule `{spec}`"));
    }
}

fn base_chain(table: &Table, kind: ChainKind) -> Chain<'_> {
    let (chain_type, hook, priority) = kind.hook();
    let mut chain = Chain::new(kind.name(), table);
    chain.set_type(chain_type);
    chain.set_hook(hook, priority);
    chain.set_policy(Policy::Accept);
    chain
}

/// Appends the expressions of one statement. Matches load into register 1 and compare it;
/// `dnat` takes the address from register 1 and the port from register 2.
fn encode(rule: &mut Rule<'_>, stmt: &Stmt<'_>, host_addrs: &Set<'_, Ipv4Addr>) {
    let cmp_op = |equal: bool| if equal { CmpOp::Eq } else { CmpOp::Neq };
    match stmt {
        Stmt::IifName { name, equal } => {
            rule.add_expr(&Meta::IifName);
            rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname(name)[..]));
        }
        Stmt::OifName { name, equal } => {
            rule.add_expr(&Meta::OifName);
            rule.add_expr(&Cmp::new(cmp_op(*equal), &ifname(name)[..]));
        }
        Stmt::Saddr(subnet) => {
            rule.add_expr(&nftnl::nft_expr!(payload ipv4 saddr));
            if subnet.prefix < 32 {
                let mask = Ipv4Addr::from(subnet.mask());
                rule.add_expr(&Bitwise::new(mask, Ipv4Addr::UNSPECIFIED));
            }
            rule.add_expr(&Cmp::new(CmpOp::Eq, subnet.network));
        }
        Stmt::Daddr(ip) => {
            rule.add_expr(&nftnl::nft_expr!(payload ipv4 daddr));
            rule.add_expr(&Cmp::new(CmpOp::Eq, *ip));
        }
        Stmt::DaddrIsHost => {
            rule.add_expr(&nftnl::nft_expr!(payload ipv4 daddr));
            rule.add_expr(&Lookup::new(host_addrs));
        }
        Stmt::Dport(proto, port) => {
            // The port is only meaningful once the protocol is known.
            let (number, field) = match proto {
                Proto::Tcp => (
                    libc::IPPROTO_TCP,
                    TransportHeaderField::Tcp(TcpHeaderField::Dport),
                ),
                Proto::Udp => (
                    libc::IPPROTO_UDP,
                    TransportHeaderField::Udp(UdpHeaderField::Dport),
                ),
            };
            rule.add_expr(&Meta::L4Proto);
            rule.add_expr(&Cmp::new(CmpOp::Eq, number as u8));
            rule.add_expr(&Payload::Transport(field));
            rule.add_expr(&Cmp::new(CmpOp::Eq, &port.to_be_bytes()[..]));
        }
        Stmt::CtEstablishedOrRelated => {
            let states = nftnl::expr::States::ESTABLISHED | nftnl::expr::States::RELATED;
            rule.add_expr(&Conntrack::State);
            rule.add_expr(&Bitwise::new(states.bits(), 0u32));
            rule.add_expr(&Cmp::new(CmpOp::Neq, 0u32));
        }
        Stmt::HasMark => {
            rule.add_expr(&Meta::Mark { set: false });
            rule.add_expr(&Cmp::new(CmpOp::Eq, MARK));
        }
        Stmt::SetMark => {
            rule.add_expr(&Immediate::new(MARK, Register::Reg1));
            rule.add_expr(&Meta::Mark { set: true });
        }
        Stmt::Dnat(ip, port) => {
            rule.add_expr(&Immediate::new(ip.octets(), Register::Reg1));
            rule.add_expr(&Immediate::new(port.to_be_bytes(), Register::Reg2));
            rule.add_expr(&Nat {
                nat_type: NatType::DNat,
                family: ProtoFamily::Ipv4,
                ip_register: Register::Reg1,
                port_register: Some(Register::Reg2),
            });
        }
        Stmt::Masquerade => rule.add_expr(&Masquerade),
        Stmt::Accept => rule.add_expr(&Verdict::Accept),
        Stmt::Drop => rule.add_expr(&Verdict::Drop),
    }
}

/// An interface name as the kernel holds it for `meta iifname`/`oifname`: NUL-padded to
/// IFNAMSIZ, so the comparison covers the whole name and "forge1" never matches "forge10".
/// (`validate` guarantees the name fits.)
fn ifname(name: &str) -> [u8; IFNAMSIZ] {
    let mut padded = [0; IFNAMSIZ];
    padded[..name.len()].copy_from_slice(name.as_bytes());
    padded
}

// ---------------------------------------------------------------------------------------------
// Sending one batch.

/// A batch being built, with what each message does, so a kernel error names its step.
struct Msgs {
    batch: Batch,
    labels: Vec<String>,
}

impl Msgs {
    fn new() -> Self {
        Msgs {
            batch: Batch::new(),
            labels: Vec::new(),
        }
    }

    /// The message is serialized into the batch right away: `msg` may be dropped afterwards.
    fn add<T: NlMsg>(&mut self, msg: &T, msg_type: MsgType, label: impl Into<String>) {
        self.batch.add(msg, msg_type);
        self.labels.push(label.into());
    }

    /// Sends the batch and waits for the kernel to acknowledge every message. On failure,
    /// returns the step that failed and why; the kernel has then applied nothing.
    fn send(self) -> Result<(), (String, io::Error)> {
        let batch = self.batch.finalize();
        let seqs = batch.sequence_numbers();
        // Kernels from 6.10 also acknowledge the batch's begin and end messages.
        let framing = (seqs.len() - self.labels.len()) / 2;
        let step = |seq: u32| {
            let index = seq.saturating_sub(seqs.start) as usize;
            match index.checked_sub(framing).map(|i| self.labels.get(i)) {
                None => "starting the batch".to_string(),
                Some(None) => "committing the batch".to_string(),
                Some(Some(label)) => label.clone(),
            }
        };

        let socket =
            open_socket().map_err(|e| ("opening a netlink socket to nf_tables".to_string(), e))?;
        socket
            .send_all(&batch)
            .map_err(|e| ("sending the batch to the kernel".to_string(), hint(e)))?;
        await_acks(&socket, seqs.clone()).map_err(|(seq, e)| match seq {
            Some(seq) => (step(seq), hint(e)),
            None => ("reading the kernel's answer".to_string(), e),
        })
    }
}

fn open_socket() -> io::Result<mnl::Socket> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    set_reply_timeout(&socket)?;
    Ok(socket)
}

/// Reads answers until every sequence number in `seqs` is acknowledged. An error is returned
/// with the sequence number of the message it answers, when there is one.
fn await_acks(socket: &mnl::Socket, seqs: Range<u32>) -> Result<(), (Option<u32>, io::Error)> {
    let portid = socket.portid();
    let mut pending: BTreeSet<u32> = seqs.collect();
    // Netlink messages must be read into a buffer aligned for `nlmsghdr`.
    let align = std::mem::align_of::<libc::nlmsghdr>();
    let mut raw = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize + align];
    let offset = raw.as_ptr().align_offset(align);
    let buffer = &mut raw[offset..];
    while !pending.is_empty() {
        let messages = socket.recv(buffer).map_err(|e| (None, timed_out(e)))?;
        for message in messages {
            let message = message.map_err(|e| (None, e))?;
            // The answer to message N carries sequence number N (bytes 8..12 of the header).
            let seq = message
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_ne_bytes);
            mnl::cb_run(message, seq, portid).map_err(|e| (Some(seq), e))?;
            pending.remove(&seq);
        }
    }
    Ok(())
}

fn timed_out(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::WouldBlock {
        return e;
    }
    let message = format!("the kernel did not answer within {REPLY_TIMEOUT_SECS} s");
    io::Error::new(io::ErrorKind::TimedOut, message)
}

/// The kernel answers every message of a batch, but a daemon must not hang forever if it
/// does not.
fn set_reply_timeout(socket: &mnl::Socket) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `socket`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let timeout = nix::sys::time::TimeVal::new(REPLY_TIMEOUT_SECS, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(io::Error::from)
}

/// Says what a bare errno usually means here.
fn hint(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) => io::Error::new(
            e.kind(),
            format!("{e} (changing nftables needs root or CAP_NET_ADMIN)"),
        ),
        _ => e,
    }
}

/// What the kernel tests in `tests/nft.rs` need of this module's internals; not an API.
#[doc(hidden)]
pub mod testing {
    use super::*;

    pub fn subnet(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    /// Two networks (the second internal), two published ports (one on any host address, one
    /// on a given address).
    pub fn sample() -> Ruleset {
        Ruleset {
            networks: vec![
                NetRule {
                    bridge: "forge0".into(),
                    subnet: subnet("10.89.1.0/24"),
                    internal: false,
                },
                NetRule {
                    bridge: "forge1".into(),
                    subnet: subnet("10.89.2.0/24"),
                    internal: true,
                },
            ],
            ports: vec![
                PortRule {
                    proto: Proto::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    container_ip: Ipv4Addr::new(10, 89, 1, 2),
                    container_port: 80,
                },
                PortRule {
                    proto: Proto::Udp,
                    host_ip: Some(Ipv4Addr::new(192, 0, 2, 7)),
                    host_port: 5353,
                    container_ip: Ipv4Addr::new(10, 89, 2, 3),
                    container_port: 53,
                },
            ],
            host_addrs: vec![
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(192, 0, 2, 7),
                Ipv4Addr::new(127, 0, 0, 1),
            ],
        }
    }

    /// Each base chain as `(name, type, priority)`, as an nft script declares it.
    pub fn chains() -> Vec<(String, &'static str, i32)> {
        ChainKind::ALL
            .iter()
            .map(|kind| {
                let (chain_type, _, priority) = kind.hook();
                let chain_type = if chain_type == ChainType::Nat {
                    "nat"
                } else {
                    "filter"
                };
                (
                    kind.name().to_string_lossy().into_owned(),
                    chain_type,
                    priority,
                )
            })
            .collect()
    }

    /// Sends the batch that applies `rules` with, at its end, a rule added to a chain that does
    /// not exist (labelled "adding a rule to a chain that does not exist"): the kernel refuses it.
    pub fn apply_with_a_rule_in_a_missing_chain(
        rules: &Ruleset,
    ) -> Result<(), (String, io::Error)> {
        let mut msgs = Msgs::new();
        write_ruleset(&mut msgs, rules);
        let table = Table::new(TABLE_C, ProtoFamily::Ipv4);
        let missing = Chain::new(c"missing", &table);
        let mut bogus = Rule::new(&missing);
        bogus.add_expr(&Verdict::Accept);
        msgs.add(
            &bogus,
            MsgType::Add,
            "adding a rule to a chain that does not exist",
        );
        msgs.send()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::sample;
    use super::*;

    const SAMPLE_RULES: &[&str] = &[
        r#"prerouting: iifname "forge0" ip daddr @host_addrs tcp dport 8080 meta mark set 0x00004647 dnat to 10.89.1.2:80"#,
        r#"prerouting: iifname "forge1" ip daddr @host_addrs tcp dport 8080 meta mark set 0x00004647 dnat to 10.89.1.2:80"#,
        r#"prerouting: ip daddr @host_addrs tcp dport 8080 dnat to 10.89.1.2:80"#,
        r#"prerouting: iifname "forge0" ip daddr 192.0.2.7 udp dport 5353 meta mark set 0x00004647 dnat to 10.89.2.3:53"#,
        r#"prerouting: iifname "forge1" ip daddr 192.0.2.7 udp dport 5353 meta mark set 0x00004647 dnat to 10.89.2.3:53"#,
        r#"prerouting: ip daddr 192.0.2.7 udp dport 5353 dnat to 10.89.2.3:53"#,
        r#"output: ip daddr @host_addrs tcp dport 8080 meta mark set 0x00004647 dnat to 10.89.1.2:80"#,
        r#"output: ip daddr 192.0.2.7 udp dport 5353 meta mark set 0x00004647 dnat to 10.89.2.3:53"#,
        r#"postrouting: meta mark 0x00004647 masquerade"#,
        r#"postrouting: ip saddr 10.89.1.0/24 oifname != "forge0" masquerade"#,
        r#"forward: ct state established,related accept"#,
        r#"forward: meta mark 0x00004647 accept"#,
        r#"forward: iifname "forge1" oifname != "forge1" drop"#,
        r#"forward: oifname "forge1" iifname != "forge1" drop"#,
        r#"forward: iifname "forge0" oifname "forge1" drop"#,
        r#"forward: iifname "forge1" oifname "forge0" drop"#,
        r#"forward: iifname "forge0" accept"#,
        r#"forward: oifname "forge0" accept"#,
    ];

    #[test]
    fn describe_lists_every_rule_in_order() {
        assert_eq!(describe(&sample()), SAMPLE_RULES);
    }

    #[test]
    fn describe_without_networks_or_ports_keeps_the_fixed_rules() {
        assert_eq!(
            describe(&Ruleset::default()),
            [
                "postrouting: meta mark 0x00004647 masquerade",
                "forward: ct state established,related accept",
                "forward: meta mark 0x00004647 accept",
            ]
        );
    }

    #[test]
    fn interface_names_are_nul_padded_to_ifnamsiz() {
        assert_eq!(&ifname("forge1"), b"forge1\0\0\0\0\0\0\0\0\0\0");
        assert_ne!(ifname("forge1"), ifname("forge10"));
    }

    #[test]
    fn bad_bridge_names_and_subnets_are_refused_before_the_kernel_sees_them() {
        let with_bridge = |bridge: &str| {
            let mut rules = sample();
            rules.networks[0].bridge = bridge.into();
            apply(&rules).unwrap_err().to_string()
        };
        for bad in ["", "sixteen-chars-xx", "a/b", "a b"] {
            let message = with_bridge(bad);
            assert!(
                message.starts_with("applying Forge's nftables table 'forge': bridge name"),
                "{message}"
            );
        }
        assert!(with_bridge("forge1").contains("belongs to two networks"));

        let mut rules = sample();
        rules.networks[0].subnet = Subnet {
            network: Ipv4Addr::new(10, 89, 1, 1),
            prefix: 24,
        };
        let message = apply(&rules).unwrap_err().to_string();
        assert!(message.contains("subnet 10.89.1.1/24"), "{message}");
    }
}
