//! Name resolution for containers: `/etc/hosts` naming every container on the same networks,
//! and an `/etc/resolv.conf` that works from inside a container.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::store::{Endpoint, State};

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// The `/etc/hosts` of container `id`: localhost, itself (its first network's address), then
/// every other container that shares one of its networks, by its address on that network.
pub fn render(state: &State, id: &str) -> String {
    let mut text = LOCALHOST.to_string();
    let mine = state.of_container(id);
    let Some(first) = mine.first() else {
        return text;
    };
    let line = |e: &Endpoint| format!("{}\t{}\n", e.ip, e.names.join(" "));
    text.push_str(&line(first));
    let mut named = vec![id];
    for network in &mine {
        for other in state.members(&network.network) {
            if !named.contains(&other.container_id.as_str()) {
                named.push(&other.container_id);
                text.push_str(&line(other));
            }
        }
    }
    text
}

/// Rewrites the hosts file of every container on `network`. In place, not by rename: the file
/// is bind-mounted into the container, and a rename would leave the container looking at the
/// old inode.
pub fn update_network(state: &State, network: &str) {
    for member in state.members(network) {
        if let Err(e) = write_in_place(&member.hosts_file, &render(state, &member.container_id)) {
            tracing::warn!("updating {}: {e}", member.hosts_file.display());
        }
    }
}

/// Overwrites from the start, then cuts what is left of the old text: a reader in between
/// never finds the file empty (as it could after truncating first), and entries are only added
/// at the end, so the old text is usually a prefix of the new.
fn write_in_place(path: &Path, text: &str) -> io::Result<()> {
    let file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)
}

/// The host's resolv.conf without loopback name servers, which mean nothing inside the
/// container's own network namespace (systemd-resolved's 127.0.0.53, a local dnsmasq).
pub fn container_resolv_conf(host: &str) -> String {
    let mut text: String = host
        .lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            !(words.next() == Some("nameserver")
                && words
                    .next()
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback()))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    if !text.lines().any(|l| l.starts_with("nameserver")) {
        text.push_str("# the host's resolv.conf names no name server usable from a container\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    fn endpoint(id: &str, network: &str, last: u8) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            index: 0,
            names: vec![format!("{id}-name"), format!("{id}-host")],
            network: network.into(),
            ip: Ipv4Addr::new(10, 89, 0, last),
            ports: vec![],
            veth: String::new(),
            pid: 1,
            pid_start: 1,
            hosts_file: PathBuf::new(),
        }
    }

    #[test]
    fn hosts_name_the_neighbours_on_the_same_network_only() {
        let mut state = State::default();
        for (id, net, last) in [("a", "n1", 2), ("b", "n1", 3), ("c", "n2", 4)] {
            let e = endpoint(id, net, last);
            state.endpoints.insert(e.key(), e);
        }
        let hosts = render(&state, "a");
        assert!(hosts.starts_with(LOCALHOST));
        assert!(hosts.contains("10.89.0.2\ta-name a-host\n"));
        assert!(hosts.contains("10.89.0.3\tb-name b-host\n"));
        assert!(!hosts.contains("c-name"), "{hosts}");
        // Once a is also on n2, c is its neighbour there.
        let mut second = endpoint("a", "n2", 5);
        second.index = 1;
        state.endpoints.insert(second.key(), second);
        let hosts = render(&state, "a");
        assert!(hosts.contains("10.89.0.2\ta-name a-host\n"), "{hosts}");
        assert!(hosts.contains("10.89.0.4\tc-name c-host\n"), "{hosts}");
        assert!(!hosts.contains("10.89.0.5"), "{hosts}");
    }

    #[test]
    fn loopback_name_servers_are_dropped() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n";
        assert_eq!(
            container_resolv_conf(host),
            "search example.org\nnameserver 192.0.2.53\n"
        );
        assert!(container_resolv_conf("nameserver ::1\n").contains("no name server"));
    }
}
