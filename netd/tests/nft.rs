//! nftables against the real kernel, each test in a network namespace of its own (the host's
//! rules are never touched). Needs root: as a non-root user these fail, saying so.

use forge_netd::nft::testing::{apply_with_a_rule_in_a_missing_chain, chains, sample, subnet};
use forge_netd::nft::{apply, describe, remove, Ruleset};
use std::net::Ipv4Addr;
use std::process::Command;

/// Runs `f` on a new thread that first moves into a fresh network namespace: the host's
/// rules are never touched, and the namespace disappears with the thread. Processes the
/// thread spawns inherit the namespace.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it creates nftables tables (in its own network namespace)"
    );
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Runs the `nft` tool (from the calling thread's namespace) and returns its output.
fn nft(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("running nft");
    assert!(
        out.status.success(),
        "nft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn list_forge() -> String {
    nft(&["list", "table", "ip", "forge"])
}

/// The rules of `nft list` output as `CHAIN: RULE`, in order, like `describe`.
fn listed_rules(listing: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut chain = None;
    for line in listing.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("chain ") {
            chain = name.strip_suffix(" {").map(str::to_string);
        } else if line == "}" {
            chain = None;
        } else if let Some(chain) = &chain {
            if !line.is_empty() && !line.starts_with("type ") {
                rules.push(format!("{chain}: {line}"));
            }
        }
    }
    rules
}

/// The listing with its line breaks and indentation collapsed (nft wraps long lines).
fn one_line(listing: &str) -> String {
    listing.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fewer_ports() -> Ruleset {
    let mut rules = sample();
    rules.ports.truncate(1);
    rules.host_addrs.push(Ipv4Addr::new(10, 0, 0, 5));
    rules
}

#[test]
fn kernel_apply_twice_replace_and_remove() {
    in_new_netns(|| {
        let rules = sample();
        apply(&rules).unwrap();
        let first = list_forge();
        apply(&rules).unwrap();
        let second = list_forge();
        assert_eq!(
            first, second,
            "applying the same rules twice must not change the table"
        );
        eprintln!("{first}");

        // The kernel holds exactly the rules `describe` promised, in that order.
        assert_eq!(listed_rules(&first), describe(&rules));
        for expected in [
            "type nat hook prerouting priority dstnat; policy accept;",
            "type nat hook output priority -100; policy accept;",
            "type nat hook postrouting priority srcnat; policy accept;",
            "type filter hook forward priority filter; policy accept;",
            "set host_addrs {",
            "type ipv4_addr",
            "elements = { 127.0.0.1, 192.0.2.7 }",
            "dnat to 10.89.1.2:80",
            "meta mark set 0x00004647",
            "masquerade",
        ] {
            assert!(
                one_line(&first).contains(expected),
                "missing {expected:?} in\n{first}"
            );
        }

        // Fewer ports: the old port's rules are gone, not left behind.
        let smaller = fewer_ports();
        apply(&smaller).unwrap();
        let third = list_forge();
        assert!(!third.contains("5353"), "stale port rules in\n{third}");
        let elements = "elements = { 10.0.0.5, 127.0.0.1, 192.0.2.7 }";
        assert!(one_line(&third).contains(elements), "{third}");
        assert_eq!(listed_rules(&third), describe(&smaller));

        // remove() deletes Forge's table only, and is happy when it is already gone.
        nft(&["add", "table", "ip", "other"]);
        nft(&["add", "chain", "ip", "other", "keep"]);
        remove().unwrap();
        let tables = nft(&["list", "tables"]);
        assert!(tables.contains("table ip other"), "{tables}");
        assert!(!tables.contains("table ip forge"), "{tables}");
        remove().unwrap();
        assert!(nft(&["list", "table", "ip", "other"]).contains("chain keep"));
    });
}

#[test]
fn kernel_apply_in_a_namespace_without_the_table_and_remove_without_it() {
    in_new_netns(|| {
        remove().unwrap();
        assert_eq!(nft(&["list", "tables"]), "");
        let rules = sample();
        apply(&rules).unwrap();
        assert_eq!(listed_rules(&list_forge()), describe(&rules));
    });
}

/// The expressions of each rule, as `nft --debug=netlink` shows them, without handles.
fn bytecode(table: &str) -> Vec<Vec<String>> {
    let dump = nft(&["--debug=netlink", "list", "table", "ip", table]);
    let mut rules: Vec<Vec<String>> = Vec::new();
    for line in dump.lines() {
        let header = line.strip_prefix(&format!("ip {table} "));
        // Headers name a rule (`ip forge CHAIN HANDLE`) or the set (`ip forge @SET`).
        if header.is_some_and(|rest| !rest.starts_with('@')) {
            rules.push(Vec::new());
        } else if let (Some(rule), true) = (rules.last_mut(), line.starts_with("  [")) {
            rule.push(line.to_string());
        }
    }
    rules
}

/// nft itself compiles each line of `describe` to exactly what `apply` sent: the text is
/// true, and names, addresses and ports are laid out as nft lays them out.
#[test]
fn kernel_rules_are_what_nft_compiles_from_their_description() {
    in_new_netns(|| {
        // nft loads a byte-aligned prefix (/24) as 3 bytes without a mask; `apply` always
        // masks. Both mean the same; a /23 makes nft mask too, so the two can be compared.
        let mut rules = sample();
        rules.networks[0].subnet = subnet("10.88.0.0/23");
        apply(&rules).unwrap();

        let mut script = String::from("table ip check {\n set host_addrs { type ipv4_addr; }\n");
        for (name, chain_type, priority) in chains() {
            script += &format!(
                " chain {name} {{ type {chain_type} hook {name} priority {priority}; }}\n"
            );
        }
        script += "}\n";
        for line in describe(&rules) {
            let (chain, rule) = line.split_once(": ").unwrap();
            script += &format!("add rule ip check {chain} {rule}\n");
        }
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("running nft");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "nft -f failed on\n{script}"
        );

        let ours = bytecode("forge");
        assert_eq!(ours.len(), describe(&rules).len());
        assert_eq!(ours, bytecode("check"));
    });
}

/// A published port really forwards: the host connects to 127.0.0.1:8080 and reaches a
/// server on 10.89.1.2:80 (both on this namespace's `lo`).
#[test]
fn kernel_published_port_forwards_a_connection_from_the_host() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    in_new_netns(|| {
        Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        let added = Command::new("ip")
            .args(["addr", "add", "10.89.1.2/32", "dev", "lo"])
            .status()
            .unwrap();
        assert!(added.success());
        let server = TcpListener::bind("10.89.1.2:80").unwrap();
        let published: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let timeout = Duration::from_secs(5);

        assert!(
            TcpStream::connect_timeout(&published, timeout).is_err(),
            "nothing listens on 127.0.0.1:8080 before the rules exist"
        );
        let mut rules = sample();
        rules.networks.clear();
        rules.ports.truncate(1);
        apply(&rules).unwrap();

        let mut client = TcpStream::connect_timeout(&published, timeout).unwrap();
        client.write_all(b"ping").unwrap();
        let (mut conn, _) = server.accept().unwrap();
        let mut got = [0; 4];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        remove().unwrap();
        assert!(TcpStream::connect_timeout(&published, timeout).is_err());
    });
}

/// A batch the kernel refuses halfway through changes nothing, and the error names the
/// message that failed.
#[test]
fn kernel_failed_batch_leaves_the_old_table() {
    in_new_netns(|| {
        apply(&sample()).unwrap();
        let before = list_forge();

        let (step, error) = apply_with_a_rule_in_a_missing_chain(&fewer_ports()).unwrap_err();
        assert_eq!(step, "adding a rule to a chain that does not exist");
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");

        assert_eq!(list_forge(), before);
    });
}
