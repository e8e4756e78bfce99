//! Dependency order: services start after everything they depend on, and stop in the reverse
//! order. Among services whose dependencies are all placed, the smallest name goes first, so the
//! order is the same on every run.

use std::collections::{BTreeMap, BTreeSet};

use crate::compose::Service;

/// Service names, dependencies first; an unknown dependency or a cycle is an error that names it.
pub fn start_order(services: &BTreeMap<String, Service>) -> Result<Vec<String>, String> {
    let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, service) in services {
        for dep in service.depends_on.keys() {
            if !services.contains_key(dep) {
                return Err(format!("service {name} depends on unknown service {dep}"));
            }
            dependents.entry(dep).or_default().push(name);
        }
        waiting_on.insert(name, service.depends_on.len());
    }
    let mut ready: BTreeSet<&str> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut order = Vec::with_capacity(services.len());
    while let Some(name) = ready.pop_first() {
        order.push(name.to_string());
        for dependent in dependents.get(name).into_iter().flatten() {
            let n = waiting_on
                .get_mut(dependent)
                .expect("every service is counted");
            *n -= 1;
            if *n == 0 {
                ready.insert(dependent);
            }
        }
    }
    if order.len() < services.len() {
        let cycle = find_cycle(services).expect("services left unplaced form a cycle");
        return Err(format!("dependency cycle: {}", cycle.join(" -> ")));
    }
    Ok(order)
}

/// The reverse of [`start_order`]: dependents stop before what they depend on.
pub fn stop_order(services: &BTreeMap<String, Service>) -> Result<Vec<String>, String> {
    let mut order = start_order(services)?;
    order.reverse();
    Ok(order)
}

/// A dependency cycle, if there is one, as the path that closes it: `["web", "db", "web"]`
/// (a service that depends on itself gives `["web", "web"]`). Unknown dependencies are ignored.
pub fn find_cycle(services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in services.keys() {
        let mut path: Vec<&str> = Vec::new();
        if let Some(cycle) = visit(services, start, &mut path, &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Depth-first search from `name`; `path` holds the services being visited.
fn visit<'a>(
    services: &'a BTreeMap<String, Service>,
    name: &'a str,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|n| *n == name) {
        let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
        cycle.push(name.to_string());
        return Some(cycle);
    }
    if done.contains(name) {
        return None;
    }
    let (name, service) = services.get_key_value(name)?;
    path.push(name);
    for dep in service.depends_on.keys() {
        if let Some(cycle) = visit(services, dep, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(name);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{parse, Condition};
    use std::path::Path;

    /// Services with the given dependencies and nothing else of interest.
    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Service> {
        let mut text = String::new();
        for (name, _) in edges {
            text.push_str(&format!("[services.{name}]\nimage = \"host\"\n"));
        }
        let mut services = parse(Path::new("t.toml"), &text).unwrap().services;
        for (name, deps) in edges {
            let service = services.get_mut(*name).unwrap();
            for dep in *deps {
                service
                    .depends_on
                    .insert(dep.to_string(), Condition::Started);
            }
        }
        services
    }

    #[test]
    fn dependencies_first_ties_by_name() {
        let services = graph(&[
            ("web", &["db", "cache"]),
            ("db", &[]),
            ("cache", &["db"]),
            ("client", &["web"]),
            ("alone", &[]),
            ("zeta", &[]),
        ]);
        assert_eq!(
            start_order(&services).unwrap(),
            ["alone", "db", "cache", "web", "client", "zeta"]
        );
        assert_eq!(
            stop_order(&services).unwrap(),
            ["zeta", "client", "web", "cache", "db", "alone"]
        );
    }

    #[test]
    fn a_cycle_is_named() {
        let services = graph(&[
            ("web", &["db"]),
            ("db", &["web"]),
            ("a", &[]),
            ("b", &["web"]),
        ]);
        assert_eq!(
            start_order(&services).unwrap_err(),
            "dependency cycle: web -> db -> web"
        );
        let longer = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        assert_eq!(find_cycle(&longer).unwrap(), ["a", "b", "c", "a"]);
        let own = graph(&[("web", &["web"])]);
        assert_eq!(find_cycle(&own).unwrap(), ["web", "web"]);
        assert_eq!(find_cycle(&graph(&[("a", &["b"]), ("b", &[])])), None);
    }

    #[test]
    fn unknown_dependency_is_named() {
        let services = graph(&[("web", &["db"])]);
        assert_eq!(
            start_order(&services).unwrap_err(),
            "service web depends on unknown service db"
        );
    }
}
