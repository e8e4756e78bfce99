//! `forge network create|ls|inspect|rm`: Forge's bridge networks.

use forge_netd::ipam::Subnet;
use forge_netd::{Netd, NetworkOptions};

use crate::report;

#[derive(clap::Subcommand)]
pub enum NetworkCommand {
    /// Create a network: a bridge with its own subnet
    Create {
        /// IPv4 subnet, e.g. 10.89.1.0/24 [default: a free /24 in 10.89.0.0/16 and up]
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address on the bridge [default: the subnet's first address]
        #[arg(long)]
        gateway: Option<std::net::Ipv4Addr>,
        /// No route out: containers reach only each other
        #[arg(long)]
        internal: bool,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls,
    /// Show networks and their containers as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while containers are attached)
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn network(netd: &Netd, cmd: NetworkCommand) -> i32 {
    if let Err(e) = crate::require_root() {
        report(&e);
        return 1;
    }
    match cmd {
        NetworkCommand::Create {
            subnet,
            gateway,
            internal,
            name,
        } => {
            let subnet = match subnet.map(|s| s.parse::<Subnet>()).transpose() {
                Ok(subnet) => subnet,
                Err(e) => {
                    report(&format!("--subnet: {e}"));
                    return 1;
                }
            };
            let opts = NetworkOptions {
                subnet,
                gateway,
                internal,
                ..NetworkOptions::default()
            };
            match netd.create_network(&name, &opts) {
                Ok(network) => {
                    println!("{}", network.name);
                    0
                }
                Err(e) => {
                    report(&e);
                    1
                }
            }
        }
        NetworkCommand::Ls => match netd.list() {
            Ok(networks) => {
                println!(
                    "{:<20}  {:<10}  {:<18}  {:<15}  {:<8}  CONTAINERS",
                    "NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL"
                );
                for (n, members) in networks {
                    println!(
                        "{:<20}  {:<10}  {:<18}  {:<15}  {:<8}  {}",
                        n.name,
                        n.bridge,
                        n.subnet.to_string(),
                        n.gateway.to_string(),
                        n.internal,
                        members.len()
                    );
                }
                0
            }
            Err(e) => {
                report(&e);
                1
            }
        },
        NetworkCommand::Inspect { names } => {
            let mut code = 0;
            let mut found = Vec::new();
            for name in names {
                match netd.inspect(&name) {
                    Ok((network, containers)) => found.push(serde_json::json!({
                        "network": network,
                        "containers": containers,
                    })),
                    Err(e) => {
                        report(&e);
                        code = 1;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&found).expect("json"));
            code
        }
        NetworkCommand::Rm { names } => {
            let mut code = 0;
            for name in names {
                match netd.remove_network(&name) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        report(&e);
                        code = 1;
                    }
                }
            }
            code
        }
    }
}
