//! Bridge networking against the real kernel: each test's Forge runs in a private network
//! namespace (see `common::Netns`); "the outside" is a second namespace joined to it by a veth,
//! with a server in it. No packet leaves the namespaces a test made.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{Background, Forge, Netns};

/// The test namespace's uplink address and the outside server's, on a documentation subnet.
const UPLINK: &str = "192.0.2.1";
const OUTSIDE: &str = "192.0.2.2";

/// Joins a new "outside" namespace to the test's namespace: `up0` (UPLINK) ↔ `out0` (OUTSIDE).
fn outside(forge: &Forge) -> Netns {
    let out = Netns::new();
    let peer = format!("netns {}", out.path());
    let mut args = vec!["link", "add", "up0", "type", "veth", "peer", "name", "out0"];
    args.extend(peer.split(' '));
    forge.netns.ok("ip", &args);
    forge.netns.ok(
        "ip",
        &["addr", "add", &format!("{UPLINK}/24"), "dev", "up0"],
    );
    forge.netns.ok("ip", &["link", "set", "up0", "up"]);
    out.ok(
        "ip",
        &["addr", "add", &format!("{OUTSIDE}/24"), "dev", "out0"],
    );
    out.ok("ip", &["link", "set", "out0", "up"]);
    out
}

/// A one-shot HTTP server in `ns` that answers with the address the client came from.
fn peer_reporting_server(ns: &Netns, port: u16) -> std::sync::mpsc::Receiver<Ipv4Addr> {
    let listener = ns.within(|| TcpListener::bind((OUTSIDE, port)).expect("binding the server"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let SocketAddr::V4(peer) = peer else {
            panic!("IPv6 peer {peer}")
        };
        let _ = write!(conn, "HTTP/1.0 200 OK\r\n\r\nseen {}\n", peer.ip());
        let _ = tx.send(*peer.ip());
    });
    rx
}

/// GETs `/` from `addr` inside `ns`; the body, or the error.
fn http_get(ns: &Netns, addr: &str) -> Result<String, String> {
    ns.within(|| {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(3))).ok();
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        Ok(response
            .split_once("\r\n\r\n")
            .map_or(response.clone(), |(_, body)| body.to_string()))
    })
}

/// A detached container serving `text` over HTTP on port 80.
fn web(forge: &Forge, name: &str, extra: &[&str], text: &str) {
    let script =
        format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend(["host", "sh", "-c", &script]);
    forge.ok(&args);
    // Ready once it answers on its own address from the namespace's side of the bridge.
    let ip = ip_of(forge, name);
    common::eventually(Duration::from_secs(10), "the web server to answer", || {
        http_get(&forge.netns, &format!("{ip}:80")).ok()
    });
}

/// A shell command that GETs `/` from `ip:port` inside a container (busybox's own `wget`
/// crashes in its static Debian build, so `nc` speaks the HTTP).
fn nc_get(ip: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}")
}

fn ip_of(forge: &Forge, name: &str) -> String {
    forge.inspect(name)["State"]["ip"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no address"))
        .to_string()
}

fn nft_table(forge: &Forge) -> String {
    forge.netns.ok("nft", &["list", "table", "ip", "forge"])
}

#[test]
fn containers_on_one_network_reach_each_other_by_address_and_name() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "alpha", "host", "sleep", "60"]);
    let alpha = ip_of(&forge, "alpha");
    let out = forge.ok(&[
        "run",
        "--rm",
        "--name",
        "beta",
        "host",
        "sh",
        "-c",
        &format!(
            "ip -4 -o addr show eth0 && ip route && ping -c1 -W2 {alpha} && ping -c1 -W2 alpha"
        ),
    ]);
    assert!(out.stdout.contains("eth0"), "{out}");
    assert!(out.stdout.contains("default via"), "{out}");
    assert_eq!(out.stdout.matches("1 packets received").count(), 2, "{out}");
    assert!(
        !out.stdout.contains(&format!("inet {alpha}/")),
        "beta got alpha's address: {out}"
    );
}

#[test]
fn hosts_files_follow_containers_as_they_come_and_go() {
    let forge = Forge::new();
    forge.ok(&["run", "-d", "--name", "alpha", "host", "sleep", "60"]);
    forge.ok(&["run", "-d", "--name", "beta", "host", "sleep", "60"]);
    let beta = ip_of(&forge, "beta");
    forge.ok(&["run", "--rm", "--name", "gamma", "host", "true"]); // comes and goes
    let alpha_id = forge.inspect("alpha")["Config"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hosts = forge.root().join(format!("containers/{alpha_id}/hosts"));
    let text = std::fs::read_to_string(&hosts).unwrap();
    assert!(
        text.contains(&format!("{beta}\tbeta")),
        "alpha's hosts: {text}"
    );
    assert!(!text.contains("gamma"), "alpha's hosts: {text}");
    forge.ok(&["rm", "-f", "beta"]);
    let text = std::fs::read_to_string(&hosts).unwrap();
    assert!(
        !text.contains("beta"),
        "beta is gone but still in alpha's hosts: {text}"
    );
    // Seen from inside: the bind-mounted file is the same inode, rewritten in place.
    let pid = forge.running_pid("alpha");
    let inside = std::fs::read_to_string(format!("/proc/{pid}/root/etc/hosts")).unwrap();
    assert_eq!(inside, text);
}

#[test]
fn outside_traffic_is_masqueraded_behind_the_uplink_address() {
    let forge = Forge::new();
    let out = outside(&forge);
    // The test namespace routes to "the outside" only through up0.
    let seen = peer_reporting_server(&out, 9000);
    let page = forge.ok(&[
        "run",
        "--rm",
        "host",
        "sh",
        "-c",
        &format!("ip -4 -o addr show eth0; {}", nc_get(OUTSIDE, 9000)),
    ]);
    let peer = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the server saw no client");
    assert_eq!(
        peer.to_string(),
        UPLINK,
        "the outside saw {peer}, not the uplink: {page}"
    );
    assert!(page.stdout.contains(&format!("seen {UPLINK}")), "{page}");
    assert!(
        !page.stdout.contains(&format!("inet {UPLINK}")),
        "the container itself holds the uplink address?"
    );
}

#[test]
fn internal_networks_reach_each_other_but_not_the_outside() {
    let forge = Forge::new();
    let out = outside(&forge);
    forge.ok(&["network", "create", "--internal", "inner"]);
    forge.ok(&[
        "run", "-d", "--net", "inner", "--name", "alpha", "host", "sleep", "60",
    ]);
    let _seen = peer_reporting_server(&out, 9001);
    let run = forge.run(&[
        "run",
        "--rm",
        "--net",
        "inner",
        "host",
        "sh",
        "-c",
        &format!("ping -c1 -W2 alpha && {}", nc_get(OUTSIDE, 9001)),
    ]);
    assert!(run.stdout.contains("1 packets received"), "{run}");
    assert_ne!(
        run.code, 0,
        "an internal network reached the outside: {run}"
    );
    assert!(!run.stdout.contains("seen"), "{run}");
}

#[test]
fn published_ports_answer_from_the_host_loopback_outside_and_other_containers() {
    let forge = Forge::new();
    let out = outside(&forge);
    web(&forge, "site", &["-p", "8080:80"], "hello-from-site");
    let ps = forge.ok(&["ps"]).stdout;
    let ip = ip_of(&forge, "site");
    assert!(
        ps.contains("0.0.0.0:8080->80/tcp") && ps.contains(&ip),
        "{ps}"
    );
    for addr in [format!("{UPLINK}:8080"), "127.0.0.1:8080".to_string()] {
        let body = http_get(&forge.netns, &addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert_eq!(body.trim(), "hello-from-site", "{addr}");
    }
    // From another host (the outside namespace), to the uplink address.
    let body = http_get(&out, &format!("{UPLINK}:8080")).expect("from the outside");
    assert_eq!(body.trim(), "hello-from-site");
    // Hairpin: a container on the same bridge, through the host's address.
    let page = forge.ok(&["run", "--rm", "host", "sh", "-c", &nc_get(UPLINK, 8080)]);
    assert!(page.stdout.contains("hello-from-site"), "{page}");
    // Only the published port is forwarded.
    assert!(http_get(&forge.netns, &format!("{UPLINK}:8081")).is_err());
}

#[test]
fn a_port_bound_to_one_host_address_answers_only_there() {
    let forge = Forge::new();
    let _out = outside(&forge);
    web(&forge, "site", &["-p", "127.0.0.1:8080:80"], "local-only");
    let body = http_get(&forge.netns, "127.0.0.1:8080").expect("via 127.0.0.1");
    assert_eq!(body.trim(), "local-only");
    assert!(http_get(&forge.netns, &format!("{UPLINK}:8080")).is_err());
}

#[test]
fn separate_networks_are_isolated() {
    let forge = Forge::new();
    forge.ok(&["network", "create", "--subnet", "10.89.50.0/24", "front"]);
    forge.ok(&["network", "create", "--subnet", "10.89.51.0/24", "back"]);
    forge.ok(&[
        "run", "-d", "--net", "front", "--name", "alpha", "host", "sleep", "60",
    ]);
    let alpha = ip_of(&forge, "alpha");
    assert!(alpha.starts_with("10.89.50."), "{alpha}");
    let same = forge.run(&[
        "run", "--rm", "--net", "front", "host", "ping", "-c1", "-W2", &alpha,
    ]);
    assert_eq!(same.code, 0, "same network: {same}");
    let other = forge.run(&[
        "run", "--rm", "--net", "back", "host", "ping", "-c1", "-W2", &alpha,
    ]);
    assert_ne!(
        other.code, 0,
        "a container on another network reached alpha: {other}"
    );
    let by_name = forge.run(&[
        "run", "--rm", "--net", "back", "host", "ping", "-c1", "-W1", "alpha",
    ]);
    assert_ne!(by_name.code, 0, "{by_name}");
}

#[test]
fn twenty_concurrent_runs_get_twenty_addresses() {
    let forge = Forge::new();
    let mut runs: Vec<Background> = (0..20)
        .map(|n| {
            forge.spawn(&[
                "run",
                "-d",
                "--name",
                &format!("c{n}"),
                "host",
                "sleep",
                "60",
            ])
        })
        .collect();
    for run in &mut runs {
        let out = run.finish(common::COMMAND_TIMEOUT);
        assert_eq!(out.code, 0, "{out}");
    }
    let mut ips: Vec<String> = (0..20).map(|n| ip_of(&forge, &format!("c{n}"))).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert_eq!(
        forge
            .netns
            .links()
            .iter()
            .filter(|l| l.starts_with("fg"))
            .count(),
        20
    );
}

#[test]
fn rules_are_rebuilt_not_accumulated_over_fifty_cycles() {
    let forge = Forge::new();
    forge.ok(&["run", "--rm", "host", "true"]);
    let before = nft_table(&forge);
    assert!(before.contains("masquerade"), "{before}");
    for n in 0..50 {
        let port = format!("{}:80", 8000 + n % 3);
        forge.ok(&["run", "--rm", "-p", &port, "host", "true"]);
    }
    assert_eq!(nft_table(&forge), before);
    assert!(forge.network_leftovers().is_empty());
}

#[test]
fn a_killed_forge_leaves_nothing_the_next_run_does_not_clean_up() {
    let forge = Forge::new();
    forge.ok(&["run", "--rm", "host", "true"]);
    let before = nft_table(&forge);
    // Kill forge at different points of its start-up, network set-up included.
    for delay_ms in [2u64, 5, 8, 11, 14, 17, 20, 25, 30, 40, 60] {
        let mut run = forge.spawn(&["run", "--rm", "-p", "9090:80", "host", "sleep", "30"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        run.kill();
        let _ = run.finish(common::COMMAND_TIMEOUT);
    }
    // The next run reconciles what the killed ones left.
    forge.ok(&["run", "--rm", "-p", "9090:80", "host", "true"]);
    forge.ok(&["network", "ls"]);
    let left = common::settled(|| forge.network_leftovers());
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(nft_table(&forge), before);
}

#[test]
fn network_commands_create_list_inspect_and_remove() {
    let forge = Forge::new();
    forge.ok(&[
        "network",
        "create",
        "--subnet",
        "10.89.70.0/24",
        "--gateway",
        "10.89.70.254",
        "app",
    ]);
    let ls = forge.ok(&["network", "ls"]).stdout;
    assert!(ls.contains("app") && ls.contains("10.89.70.0/24"), "{ls}");
    forge.ok(&[
        "run",
        "-d",
        "--net",
        "app",
        "--ip",
        "10.89.70.7",
        "--name",
        "alpha",
        "host",
        "sleep",
        "60",
    ]);
    assert_eq!(ip_of(&forge, "alpha"), "10.89.70.7");
    let bridge_ip = forge.netns.ok("ip", &["-4", "-o", "addr", "show"]);
    assert!(bridge_ip.contains("10.89.70.254/24"), "{bridge_ip}");
    let inspect: serde_json::Value =
        serde_json::from_str(&forge.ok(&["network", "inspect", "app"]).stdout).unwrap();
    assert_eq!(inspect[0]["containers"][0]["ip"], "10.89.70.7");
    let refused = forge.run(&["network", "rm", "app"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("alpha"), "{refused}");
    forge.ok(&["rm", "-f", "alpha"]);
    // The last container leaving does not delete a user-created network.
    assert!(forge.netns.links().iter().any(|l| l.starts_with("forge")));
    forge.ok(&["network", "rm", "app"]);
    assert!(!forge.netns.links().iter().any(|l| l.starts_with("forge")));
    let gone = forge.run(&["network", "inspect", "app"]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("no such network: app"), "{gone}");
}

// ---- bad input: one clear line, nothing created ----

fn refused(forge: &Forge, args: &[&str], culprit: &str) {
    let before = forge.container_ids();
    let net_before = forge.network_leftovers();
    let out = forge.run(args);
    assert_ne!(out.code, 0, "forge {args:?} succeeded: {out}");
    assert!(out.forge_error_line().contains(culprit), "{out}");
    if args[0] == "run" {
        assert_eq!(out.code, 125, "{out}");
        assert_eq!(
            forge.container_ids(),
            before,
            "a refused run left a container"
        );
    }
    assert_eq!(
        forge.network_leftovers(),
        net_before,
        "a refusal left a veth or lease"
    );
}

#[test]
fn subnets_that_overlap_a_route_or_a_network_are_refused() {
    let forge = Forge::new();
    // A link of the "host" with a route to 10.200.0.0/16.
    forge.netns.ok(
        "ip",
        &["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
    );
    forge
        .netns
        .ok("ip", &["addr", "add", "10.200.0.1/16", "dev", "d0"]);
    forge.netns.ok("ip", &["link", "set", "d0", "up"]);
    forge.netns.ok("ip", &["link", "set", "d1", "up"]);
    let links = forge.netns.links();
    refused(
        &forge,
        &["network", "create", "--subnet", "10.200.5.0/24", "x"],
        "10.200.0.0/16",
    );
    forge.ok(&["network", "create", "--subnet", "10.89.60.0/24", "n1"]);
    refused(
        &forge,
        &["network", "create", "--subnet", "10.89.60.0/25", "n2"],
        "n1",
    );
    refused(
        &forge,
        &["network", "create", "--subnet", "10.89.61.0/33", "n3"],
        "10.89.61.0/33",
    );
    refused(&forge, &["network", "create", "bad name"], "bad name");
    refused(&forge, &["network", "create", "n1"], "n1");
    let ls = forge.ok(&["network", "ls"]).stdout;
    assert!(
        !ls.contains("x ") && !ls.contains("n2") && !ls.contains("n3"),
        "{ls}"
    );
    let mut now = forge.netns.links();
    now.retain(|l| !l.starts_with("forge"));
    assert_eq!(now, links, "a refused network left a link");
    // The default network avoids the route too.
    forge.ok(&["run", "--rm", "host", "true"]);
}

#[test]
fn bad_addresses_and_ports_are_refused() {
    let forge = Forge::new();
    forge.ok(&[
        "run", "-d", "--name", "alpha", "-p", "8080:80", "host", "sleep", "60",
    ]);
    let alpha = ip_of(&forge, "alpha");
    let rules = nft_table(&forge);
    refused(
        &forge,
        &["run", "--ip", "10.1.2.3", "host", "true"],
        "10.1.2.3",
    );
    refused(&forge, &["run", "--ip", &alpha, "host", "true"], &alpha);
    refused(&forge, &["run", "-p", "8080:81", "host", "true"], "8080");
    refused(&forge, &["run", "-p", ":80", "host", "true"], "\":80\"");
    refused(
        &forge,
        &["run", "-P", "--net", "none", "host", "true"],
        "-P",
    );
    refused(
        &forge,
        &["run", "-p", "8080:70000", "host", "true"],
        "70000",
    );
    refused(
        &forge,
        &["run", "-p", "8081:80/sctp", "host", "true"],
        "sctp",
    );
    refused(
        &forge,
        &["run", "--net", "none", "-p", "8081:80", "host", "true"],
        "-p",
    );
    assert_eq!(nft_table(&forge), rules, "a refused run changed the rules");
    forge.ok(&["network", "create", "--internal", "inner"]);
    refused(
        &forge,
        &["run", "--net", "inner", "-p", "8082:80", "host", "true"],
        "internal",
    );
    refused(&forge, &["network", "rm", "bridge"], "bridge");
}

#[test]
fn a_container_on_two_networks_reaches_both_and_routes_through_the_first() {
    let forge = Forge::new();
    forge.ok(&["network", "create", "--subnet", "10.89.80.0/24", "front"]);
    forge.ok(&["network", "create", "--subnet", "10.89.81.0/24", "back"]);
    forge.ok(&[
        "run", "-d", "--net", "back", "--name", "db", "host", "sleep", "60",
    ]);
    forge.ok(&[
        "run", "-d", "--net", "front", "--name", "web", "host", "sleep", "60",
    ]);
    let out = forge.ok(&[
        "run", "--rm", "--net", "front", "--net", "back", "host", "sh", "-c",
        "ip -4 -o addr show eth0; ip -4 -o addr show eth1; ip route | grep default; ping -c1 -W2 db && ping -c1 -W2 web",
    ]);
    assert!(out.stdout.contains("eth0    inet 10.89.80."), "{out}");
    assert!(out.stdout.contains("eth1    inet 10.89.81."), "{out}");
    assert!(
        out.stdout.contains("default via 10.89.80.1 dev eth0"),
        "{out}"
    );
    assert_eq!(out.stdout.matches("1 packets received").count(), 2, "{out}");
    let other = forge.run(&[
        "run",
        "--rm",
        "--net",
        "back",
        "host",
        "ping",
        "-c1",
        "-W1",
        &ip_of(&forge, "web"),
    ]);
    assert_ne!(other.code, 0, "back reached front: {other}");
    let mixed = forge.run(&[
        "run", "--rm", "--net", "none", "--net", "front", "host", "true",
    ]);
    assert_eq!(mixed.code, 125, "{mixed}");
    let twice = forge.run(&[
        "run", "--rm", "--net", "front", "--net", "front", "host", "true",
    ]);
    assert_eq!(twice.code, 125, "{twice}");
    assert!(twice.stderr.contains("front"), "{twice}");
}

/// The host ports a running container publishes, from `forge inspect`.
fn published_host_ports(forge: &Forge, name: &str) -> Vec<(u16, u16)> {
    let state = &forge.inspect(name)["State"];
    state["ports"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} publishes nothing: {state}"))
        .iter()
        .map(|p| {
            let port = |key: &str| p[key].as_u64().expect("a port number") as u16;
            (port("host_port"), port("container_port"))
        })
        .collect()
}

#[test]
fn publish_all_and_a_bare_container_port_get_free_host_ports() {
    let forge = Forge::new();
    let tools = common::oci::tools_dir();
    common::oci::build_images(tools.path());
    forge.ok(&["load", "-i", tools.path().join("oci.tar").to_str().unwrap()]);
    let serve = |text: &str| {
        format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
    };
    // oci:v1 exposes 80/tcp and runs its command with `sh -c`.
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "oci:v1",
        &serve("from-publish-all"),
    ]);
    forge.ok(&[
        "run",
        "-d",
        "--name",
        "bare",
        "-p",
        "80",
        "host",
        "sh",
        "-c",
        &serve("from-bare-port"),
    ]);
    let all = published_host_ports(&forge, "all");
    let bare = published_host_ports(&forge, "bare");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(bare.len(), 1, "{bare:?}");
    for (host, container) in [all[0], bare[0]] {
        assert!((32768..=60999).contains(&host), "{host}");
        assert_eq!(container, 80);
    }
    assert_ne!(all[0].0, bare[0].0, "two containers got the same host port");
    let ps = forge.ok(&["ps"]).stdout;
    assert!(
        ps.contains(&format!("0.0.0.0:{}->80/tcp", all[0].0)),
        "{ps}"
    );
    for (name, port, text) in [
        ("all", all[0].0, "from-publish-all"),
        ("bare", bare[0].0, "from-bare-port"),
    ] {
        let body = common::eventually(Duration::from_secs(10), name, || {
            http_get(&forge.netns, &format!("127.0.0.1:{port}")).ok()
        });
        assert_eq!(body.trim(), text);
    }
    // Without -P the exposed port stays closed.
    forge.ok(&["run", "-d", "--name", "closed", "oci:v1", "sleep 60"]);
    assert!(forge.inspect("closed")["State"]["ports"].is_null());
}
