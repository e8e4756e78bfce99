use super::*;
use forge_runtime::UsernsMode as Mode;
use forge_runtime::{MountType, Propagation};

fn ok(text: &str) -> Compose {
    parse(Path::new("compose.toml"), text).unwrap_or_else(|err| panic!("{err}"))
}

fn err(text: &str) -> String {
    parse(Path::new("compose.toml"), text)
        .expect_err("should not parse")
        .to_string()
}

fn s(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

const FULL: &str = r#"
[x-backoff]
initial = "50ms"
max = "5s"
reset_after = "2s"

[networks.front]
subnet = "10.89.7.0/24"
gateway = "10.89.7.1"

[networks.back]
internal = true

[services.db]
image = "host"
command = ["sleep", "1000"]
environment = ["A=1", "B=two=2"]
networks = ["back"]
healthcheck = { test = ["CMD", "true"], interval = "1s", timeout = "500ms", retries = 5, start_period = "1m30s" }
x-backoff = { max = "1s" }

[services.web]
image = "host"
entrypoint = "/bin/sh -c"
command = "httpd -f -p \"8 0\" it\\'s"
environment = { PORT = 80, RATIO = 0.5, DEBUG = true, NAME = "web" }
working_dir = "/srv"
user = "1000:1000"
hostname = "www"
init = true
depends_on = ["db"]
restart = "on-failure:5"
limits = { cpus = 0.5, memory = "256m", pids = 100, storage = "512m" }
networks = ["front", "back"]
ports = ["8080:80", "127.0.0.1:53:53/udp"]
stop_signal = "INT"
stop_grace_period = "2.5s"

[services.web.healthcheck]
test = "nc -z 127.0.0.1 80"

[services.client]
image = "host"
depends_on = { web = { condition = "service_healthy" }, db = {} }
restart = "always"
limits.cpus = "1"
stop_signal = 9
user = 65534

[services.job]
image = "host"
depends_on = { db = { condition = "service_completed_successfully" } }
restart = "unless-stopped"
healthcheck = { test = ["CMD-SHELL", "test -e /ready"], disable = true }

[services.once]
image = "host"
restart = "on-failure"
healthcheck = { test = ["NONE"] }
"#;

#[test]
fn full_example() {
    let compose = ok(FULL);
    assert_eq!(compose.path, Path::new("compose.toml"));
    let ms = Duration::from_millis;
    let global = Backoff {
        initial: ms(50),
        max: ms(5000),
        reset_after: ms(2000),
    };
    assert_eq!(compose.backoff, global);
    assert_eq!(
        compose.networks.keys().collect::<Vec<_>>(),
        ["back", "default", "front"]
    );
    assert_eq!(
        compose.networks["front"],
        NetworkDef {
            subnet: Some("10.89.7.0/24".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(10, 89, 7, 1)),
            internal: false,
            ..NetworkDef::default()
        }
    );
    assert!(compose.networks["back"].internal);
    assert_eq!(compose.networks["default"], NetworkDef::default());

    let db = &compose.services["db"];
    assert_eq!(db.command, Some(s(&["sleep", "1000"])));
    assert_eq!(db.environment, s(&["A=1", "B=two=2"]));
    assert_eq!(db.networks, s(&["back"]));
    assert_eq!(
        db.backoff,
        Backoff {
            max: ms(1000),
            ..global
        }
    );
    assert_eq!(
        db.healthcheck,
        Some(Healthcheck {
            test: HealthTest::Cmd(s(&["true"])),
            interval: ms(1000),
            timeout: ms(500),
            retries: 5,
            start_period: ms(90_000),
            start_interval: None,
        })
    );

    let web = &compose.services["web"];
    assert_eq!(web.name, "web");
    assert_eq!(web.image, "host");
    assert_eq!(web.entrypoint, Some(s(&["/bin/sh", "-c"])));
    assert_eq!(web.command, Some(s(&["httpd", "-f", "-p", "8 0", "it's"])));
    assert_eq!(
        web.environment,
        s(&["PORT=80", "RATIO=0.5", "DEBUG=true", "NAME=web"])
    );
    assert_eq!(web.working_dir.as_deref(), Some("/srv"));
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(web.hostname.as_deref(), Some("www"));
    assert!(web.init);
    assert_eq!(
        web.depends_on,
        BTreeMap::from([("db".to_string(), Condition::Started)])
    );
    assert_eq!(
        web.restart,
        RestartPolicy::OnFailure {
            max_restarts: Some(5)
        }
    );
    assert_eq!(web.backoff, global);
    assert_eq!(
        web.limits,
        Limits {
            cpus: Some(0.5),
            memory: Some(256 << 20),
            memory_swap: None,
            pids: Some(100),
            storage: Some(512 << 20),
        }
    );
    assert_eq!(web.networks, s(&["front", "back"]));
    assert_eq!(
        web.ports,
        vec![
            "8080:80".parse::<PublishedPort>().unwrap(),
            "127.0.0.1:53:53/udp".parse().unwrap()
        ]
    );
    assert_eq!(web.stop_signal, Some(Signal::SIGINT));
    assert_eq!(web.stop_grace_period, ms(2500));
    assert_eq!(
        web.healthcheck.as_ref().unwrap().test,
        HealthTest::Shell("nc -z 127.0.0.1 80".into())
    );

    let client = &compose.services["client"];
    assert_eq!(
        client.depends_on,
        BTreeMap::from([
            ("db".to_string(), Condition::Started),
            ("web".to_string(), Condition::Healthy)
        ])
    );
    assert_eq!(client.restart, RestartPolicy::Always);
    assert_eq!(client.limits.cpus, Some(1.0));
    assert_eq!(client.stop_signal, Some(Signal::SIGKILL));
    assert_eq!(client.user.as_deref(), Some("65534"));

    let job = &compose.services["job"];
    assert_eq!(job.depends_on["db"], Condition::CompletedSuccessfully);
    assert_eq!(job.restart, RestartPolicy::UnlessStopped);
    assert_eq!(job.healthcheck, None, "disable = true");

    let once = &compose.services["once"];
    assert_eq!(
        once.restart,
        RestartPolicy::OnFailure { max_restarts: None }
    );
    assert_eq!(once.healthcheck, None, "test = [\"NONE\"]");

    assert_eq!(
        compose.start_order(),
        ["db", "job", "once", "web", "client"]
    );
    assert_eq!(compose.stop_order(), ["client", "web", "once", "job", "db"]);
}

#[test]
fn defaults() {
    let compose = ok("[services.app]\nimage = \"host\"\n");
    assert_eq!(compose.backoff, Backoff::default());
    assert_eq!(
        Backoff::default(),
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(10),
        }
    );
    assert_eq!(
        compose.networks,
        BTreeMap::from([("default".to_string(), NetworkDef::default())])
    );
    let app = &compose.services["app"];
    let expected = Service {
        name: "app".into(),
        image: "host".into(),
        entrypoint: None,
        command: None,
        environment: vec![],
        working_dir: None,
        user: None,
        hostname: None,
        init: false,
        pull_policy: PullPolicy::Missing,
        container_name: None,
        labels: BTreeMap::new(),
        depends_on: BTreeMap::new(),
        restarts_with: Default::default(),
        restart: RestartPolicy::No,
        backoff: Backoff::default(),
        healthcheck: None,
        limits: Limits::for_new_container(),
        networks: s(&["default"]),
        aliases: vec![],
        ipv4_address: None,
        ports: vec![],
        stop_signal: None,
        stop_grace_period: Duration::from_secs(10),
        privileges: Privileges::default(),
        read_only: false,
        tmpfs: vec![],
        userns: Mode::Host,
        volumes: vec![],
        generated: vec![],
        logging: Default::default(),
        profiles: vec![],
    };
    assert_eq!(app, &expected);

    let check = ok("[services.app]\nimage = \"host\"\nhealthcheck.test = \"true\"\n");
    assert_eq!(
        check.services["app"].healthcheck,
        Some(Healthcheck {
            test: HealthTest::Shell("true".into()),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: None,
        })
    );
}

#[test]
fn stop_signal_forms() {
    for (text, signal) in [
        ("\"SIGTERM\"", Signal::SIGTERM),
        ("\"TERM\"", Signal::SIGTERM),
        ("\"sigquit\"", Signal::SIGQUIT),
        ("\"9\"", Signal::SIGKILL),
        ("2", Signal::SIGINT),
    ] {
        let compose = ok(&format!(
            "[services.a]\nimage = \"host\"\nstop_signal = {text}\n"
        ));
        assert_eq!(compose.services["a"].stop_signal, Some(signal), "{text}");
    }
}

#[test]
fn restart_policies_round_trip() {
    for text in [
        "no",
        "always",
        "on-failure",
        "on-failure:3",
        "unless-stopped",
    ] {
        let policy: RestartPolicy = text.parse().unwrap();
        assert_eq!(policy.to_string(), text);
    }
    assert!("on-failure:0".parse::<RestartPolicy>().is_err());
    assert!("on-failure:-1".parse::<RestartPolicy>().is_err());
    assert_eq!(Condition::Healthy.to_string(), "service_healthy");
}

#[test]
fn errors_name_file_line_column_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[services.web]\nimage = \"host\"\nrestart = \"sometimes\"\n",
            "compose.toml:3:11: services.web.restart: unknown restart policy \"sometimes\" (expected no, always, on-failure[:N], unless-stopped)",
        ),
        (
            "[services.web]\nimgae = \"host\"\n",
            "compose.toml:2:1: services.web.imgae: unknown key \"imgae\" (did you mean \"image\"?)",
        ),
        (
            "[services.web]\nimage = \"host\"\ninit = \"yes\"\n",
            "compose.toml:3:8: services.web.init: expected true or false, found a string",
        ),
        (
            "[services.web]\ncommand = \"true\"\n",
            "compose.toml:1:1: services.web: missing required key \"image\"",
        ),
        (
            "networks = {}\n",
            "compose.toml:1:1: services: no services defined (add a [services.NAME] table)",
        ),
        (
            "[services.\"bad name\"]\nimage = \"host\"\n",
            "compose.toml:1:11: services.\"bad name\": invalid service name \"bad name\"",
        ),
        (
            "[services.web]\nimage = \"host\"\nenvironment = [\"=x\"]\n",
            "compose.toml:3:16: services.web.environment[0]: invalid variable \"=x\": expected KEY=VALUE",
        ),
        (
            "[services.web]\nimage = \"host\"\ncommand = \"echo 'open\"\n",
            "compose.toml:3:11: services.web.command: cannot split",
        ),
        (
            "[services.web]\nimage = \"host\"\nhealthcheck = { test = \"true\", retries = 0 }\n",
            "compose.toml:3:42: services.web.healthcheck.retries: retries must be at least 1",
        ),
        (
            "[services.web]\nimage = \"host\"\nhealthcheck = { test = [\"CMD\"] }\n",
            "services.web.healthcheck.test: [\"CMD\", ...] needs a program",
        ),
        (
            "[services.web]\nimage = \"host\"\nhealthcheck = { interval = \"1s\" }\n",
            "compose.toml:3:15: services.web.healthcheck: missing key \"test\"",
        ),
        (
            "[services.web]\nimage = \"host\"\nlimits = { cpus = 100000 }\n",
            "services.web.limits.cpus: invalid cpus \"100000\": this machine has",
        ),
        (
            "[services.web]\nimage = \"host\"\nlimits = { memory_swap = \"1g\" }\n",
            "services.web.limits.memory_swap: memory_swap needs memory",
        ),
        (
            "[services.web]\nimage = \"host\"\nstop_signal = \"SIGNOPE\"\n",
            "compose.toml:3:15: services.web.stop_signal: invalid signal \"SIGNOPE\"",
        ),
        (
            "[services.web]\nimage = \"host\"\nstop_grace_period = 10\n",
            "compose.toml:3:21: services.web.stop_grace_period: expected a duration like \"10s\" or \"1m30s\", found an integer",
        ),
        (
            "[services.web]\nimage = \"host\"\nworking_dir = \"srv\"\n",
            "services.web.working_dir: \"srv\" is not an absolute path",
        ),
        (
            "[x-backoff]\ninitial = \"2s\"\nmax = \"1s\"\n[services.web]\nimage = \"host\"\n",
            "compose.toml:3:7: x-backoff.max: max (1s) is less than initial (2s)",
        ),
        (
            "[networks.n]\ngateway = \"10.0.0.1\"\n[services.web]\nimage = \"host\"\n",
            "compose.toml:2:11: networks.n.gateway: a gateway needs a subnet",
        ),
        (
            "[networks.n]\nsubnet = \"10.0.0.1/24\"\n[services.web]\nimage = \"host\"\n",
            "compose.toml:2:10: networks.n.subnet: invalid subnet \"10.0.0.1/24\"",
        ),
        (
            "[[services]]\nimage = \"host\"\n",
            "services: expected a table of services, like [services.web], found an array",
        ),
        (
            "[services.a]\nimage = \"host\"\nports = [\"8080:80\"]\n[services.b]\nimage = \"host\"\nports = [\"0.0.0.0:8080:81\"]\n",
            "compose.toml:6:10: services.b.ports[0]: host port 8080/tcp is already published by service a (services.a.ports[0])",
        ),
        (
            "[services.a]\nimage = \"host\"\ndepends_on = [\"b\", \"b\"]\n[services.b]\nimage = \"host\"\n",
            "compose.toml:3:20: services.a.depends_on[1]: service \"b\" is listed twice",
        ),
    ];
    for (text, expected) in cases {
        let got = err(text);
        assert!(got.contains(expected), "\n got: {got}\nwant: {expected}");
    }
}

#[test]
fn service_healthy_on_a_service_without_a_healthcheck_is_refused_where_it_is_named() {
    let text = "[services.db]\nimage = \"host\"\n\n[services.web]\nimage = \"host\"\ndepends_on = { db = { condition = \"service_healthy\" } }\n";
    assert_eq!(
        err(text),
        "compose.toml:6:16: services.web.depends_on.db: service \"db\" has no healthcheck, so condition service_healthy could never be met (give db a healthcheck, or use service_started)"
    );
    let checked = format!("{text}\n[services.db.healthcheck]\ntest = [\"CMD\", \"true\"]\n");
    crate::compose::parse(Path::new("compose.toml"), &checked).unwrap();
}

#[test]
fn pull_policy_is_read_and_an_unsupported_one_refused_by_name() {
    let service = |policy: &str| {
        format!("[services.app]\nimage = \"reg:5000/app\"\npull_policy = \"{policy}\"\n")
    };
    let parse = |text: &str| crate::compose::parse(Path::new("compose.toml"), text);
    assert_eq!(
        parse(&service("always")).unwrap().services["app"].pull_policy,
        PullPolicy::Always
    );
    assert_eq!(
        parse(&service("if_not_present")).unwrap().services["app"].pull_policy,
        PullPolicy::Missing
    );
    let default = parse("[services.app]\nimage = \"host\"\n").unwrap();
    assert_eq!(default.services["app"].pull_policy, PullPolicy::Missing);
    assert!(
        err(&service("build"))
            .contains("services.app.pull_policy: pull_policy \"build\" is not supported yet"),
        "{}",
        err(&service("build"))
    );
    assert!(err(&service("daily")).contains("unknown pull policy \"daily\""));
}

#[test]
fn top_level_name_and_version_are_read_and_extension_fields_pass_at_every_level() {
    let text = "name = \"shop\"\nversion = \"3.8\"\nx-common = { a = 1 }\n\n[services.app]\nimage = \"host\"\nx-note = \"kept for people\"\nhealthcheck = { test = [\"CMD\", \"true\"], x-why = \"docs\" }\n";
    let compose = crate::compose::parse(Path::new("compose.toml"), text).unwrap();
    assert_eq!(compose.name.as_deref(), Some("shop"));
    assert!(compose.services["app"].healthcheck.is_some());
    assert_eq!(
        err("name = \"Shop\"\n[services.app]\nimage = \"host\"\n"),
        "compose.toml:1:8: name: invalid project name \"Shop\": use lowercase letters, digits, '_' and '-', starting with a letter or digit"
    );
}

#[test]
fn compose_spellings_of_limits_container_name_labels_and_expose_are_read() {
    let text = "[services.app]\nimage = \"host\"\ncontainer_name = \"shop-db\"\ncpus = 0.5\nmem_limit = \"256m\"\npids_limit = 50\nlabels = [\"tier=back\", \"bare\"]\nexpose = [\"8080\", \"53/udp\", \"9000-9001\"]\n";
    let app = crate::compose::parse(Path::new("compose.toml"), text)
        .unwrap()
        .services["app"]
        .clone();
    assert_eq!(app.container_name.as_deref(), Some("shop-db"));
    assert_eq!(app.limits.cpus, Some(0.5));
    assert_eq!(app.limits.memory, Some(256 << 20));
    assert_eq!(app.limits.pids, Some(50));
    assert_eq!(
        app.labels,
        BTreeMap::from([
            ("bare".into(), String::new()),
            ("tier".into(), "back".into())
        ])
    );
    let table = "[services.app]\nimage = \"host\"\nlabels = { \"com.example.tier\" = \"back\" }\n";
    let app = crate::compose::parse(Path::new("compose.toml"), table)
        .unwrap()
        .services["app"]
        .clone();
    assert_eq!(app.labels["com.example.tier"], "back");
    for (text, expected) in [
        (
            "[services.app]\nimage = \"host\"\nlimits = { memory = \"1g\" }\nmem_limit = \"2g\"\n",
            "compose.toml:4:13: services.app.mem_limit: the same limit as limits.memory: give one of the two",
        ),
        (
            "[services.app]\nimage = \"host\"\nmem_limit = \"lots\"\n",
            "compose.toml:3:13: services.app.mem_limit: invalid memory",
        ),
        (
            "[services.app]\nimage = \"host\"\ncontainer_name = \"bad name\"\n",
            "compose.toml:3:18: services.app.container_name: invalid container name \"bad name\"",
        ),
        (
            "[services.app]\nimage = \"host\"\nlabels = { \"forge.project\" = \"x\" }\n",
            "services.app.labels.\"forge.project\": invalid label \"forge.project\"",
        ),
        (
            "[services.a]\nimage = \"host\"\ncontainer_name = \"db\"\n[services.b]\nimage = \"host\"\ncontainer_name = \"db\"\n",
            "compose.toml:6:18: services.b.container_name: container name \"db\" is also service a's container_name",
        ),
        (
            "[services.app]\nimage = \"host\"\nexpose = [\"80/icmp\"]\n",
            "compose.toml:3:11: services.app.expose[0]: invalid port \"80/icmp\"",
        ),
    ] {
        let got = err(text);
        assert!(got.contains(expected), "{got}\n  does not contain\n{expected}");
    }
}

#[test]
fn deploy_gives_limits_and_a_restart_policy_and_refuses_what_one_host_cannot_do() {
    let text = "[services.app]\nimage = \"host\"\n[services.app.deploy]\nreplicas = 1\nresources = { limits = { cpus = \"0.5\", memory = \"128m\", pids = 30 } }\nrestart_policy = { condition = \"on-failure\", max_attempts = 3, delay = \"5s\", window = \"30s\" }\n";
    let app = crate::compose::parse(Path::new("compose.toml"), text)
        .unwrap()
        .services["app"]
        .clone();
    assert_eq!(app.limits.cpus, Some(0.5));
    assert_eq!(app.limits.memory, Some(128 << 20));
    assert_eq!(app.limits.pids, Some(30));
    assert_eq!(
        app.restart,
        RestartPolicy::OnFailure {
            max_restarts: Some(3)
        }
    );
    assert_eq!(app.backoff.initial, Duration::from_secs(5));
    assert_eq!(app.backoff.reset_after, Duration::from_secs(30));
    let any = "[services.app]\nimage = \"host\"\ndeploy = { restart_policy = {} }\n";
    let app = crate::compose::parse(Path::new("compose.toml"), any)
        .unwrap()
        .services["app"]
        .clone();
    assert_eq!(app.restart, RestartPolicy::Always);
    for (text, expected) in [
        (
            "[services.app]\nimage = \"host\"\ndeploy = { replicas = -1 }\n",
            "services.app.deploy.replicas: expected a number of containers from 0 to 1000",
        ),
        (
            "[services.app]\nimage = \"host\"\ndeploy = { placement = {} }\n",
            "unknown key \"placement\" (a Compose key that Forge does not support yet)",
        ),
        (
            "[services.app]\nimage = \"host\"\nmem_limit = \"1g\"\ndeploy = { resources = { limits = { memory = \"2g\" } } }\n",
            "services.app.deploy.resources.limits.memory: the same limit as limits.memory",
        ),
        (
            "[services.app]\nimage = \"host\"\nrestart = \"always\"\ndeploy = { restart_policy = { condition = \"any\" } }\n",
            "services.app.restart: give restart or deploy.restart_policy, not both",
        ),
        (
            "[services.app]\nimage = \"host\"\ndeploy = { restart_policy = { condition = \"sometimes\" } }\n",
            "unknown condition \"sometimes\" (expected none, on-failure or any)",
        ),
    ] {
        let got = err(text);
        assert!(got.contains(expected), "{got}\n  does not contain\n{expected}");
    }
}

#[test]
fn a_cycle_is_reported_where_it_closes() {
    let text = "[services.db]\nimage = \"host\"\ndepends_on = [\"web\"]\n\n[services.web]\nimage = \"host\"\ndepends_on = { db = { condition = \"service_completed_successfully\" } }\n";
    assert_eq!(
        err(text),
        "compose.toml:3:15: services.db.depends_on[0]: dependency cycle: db -> web -> db"
    );
}

#[test]
fn unreadable_file() {
    let err = load(Path::new("/nonexistent/compose.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/compose.toml: cannot read: No such file or directory"
    );
    assert!(err.source.is_some());
}

#[test]
fn security_keys() {
    let compose = ok(r#"
[services.app]
image = "host"
cap_drop = ["ALL"]
cap_add = ["net_bind_service", "CAP_KILL"]
read_only = true
tmpfs = ["/run", "/tmp:size=64m"]
security_opt = ["no-new-privileges:false", "seccomp=unconfined"]
userns_mode = "auto"

[services.root]
image = "host"
privileged = true
tmpfs = "/scratch"
userns_mode = "host"
"#);
    let app = &compose.services["app"];
    assert_eq!(
        app.privileges.capabilities,
        s(&["KILL", "NET_BIND_SERVICE"])
    );
    assert!(!app.privileges.no_new_privs);
    assert!(app.privileges.seccomp_unconfined && !app.privileges.privileged);
    assert!(app.read_only);
    assert_eq!(app.tmpfs, s(&["/run", "/tmp:size=64m"]));
    assert_eq!(app.userns, Mode::Auto);
    let root = &compose.services["root"];
    assert_eq!(
        root.privileges,
        Privileges::resolve(&[], &[], true).unwrap()
    );
    assert!(!root.read_only);
    assert_eq!(root.tmpfs, s(&["/scratch"]));
    assert_eq!(root.userns, Mode::Host);
}

#[test]
fn a_relative_seccomp_profile_is_read_from_the_compose_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#;
    std::fs::create_dir(dir.path().join("sec")).unwrap();
    std::fs::write(dir.path().join("sec/profile.json"), profile).unwrap();
    let text = "[services.app]\nimage = \"host\"\nsecurity_opt = [\"seccomp=sec/profile.json\"]\n";
    let file = dir.path().join("compose.toml");
    std::fs::write(&file, text).unwrap();
    // From another working directory: the path follows the file, not the cwd.
    let compose = load(&file).unwrap_or_else(|err| panic!("{err}"));
    let loaded = compose.services["app"].privileges.seccomp_profile.as_ref();
    let loaded = loaded.expect("the profile is resolved when the file is read");
    assert_eq!(loaded.source, dir.path().join("sec/profile.json"));
    assert!(!loaded.rules.is_empty());

    // Missing or broken profiles are refused at the option, naming the profile.
    std::fs::write(dir.path().join("sec/broken.json"), "{ nope").unwrap();
    for (name, what) in [
        ("missing.json", "No such file"),
        ("broken.json", "invalid JSON"),
    ] {
        let text = format!(
            "[services.app]\nimage = \"host\"\nsecurity_opt = [\"no-new-privileges\", \"seccomp=sec/{name}\"]\n"
        );
        std::fs::write(&file, text).unwrap();
        let err = load(&file).unwrap_err().to_string();
        let want = format!(
            "compose.toml:3:38: services.app.security_opt[1]: seccomp profile {}",
            dir.path().join("sec").join(name).display()
        );
        assert!(err.contains(&want) && err.contains(what), "{err}");
    }
}

#[test]
fn security_errors_are_placed_at_the_element() {
    let head = "[services.app]\nimage = \"host\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "cap_add = [\"NET_ADMIN\", \"FLY\"]",
            "3:25: services.app.cap_add[1]: unknown capability \"FLY\"",
        ),
        (
            "cap_drop = \"ALL\"",
            "3:12: services.app.cap_drop: expected a list of capabilities like [\"NET_ADMIN\"], found a string",
        ),
        ("privileged = 1", "3:14: services.app.privileged: expected true or false"),
        ("read_only = \"yes\"", "3:13: services.app.read_only: expected true or false"),
        (
            "tmpfs = [\"/run\", \"tmp\"]",
            "3:18: services.app.tmpfs[1]: invalid tmpfs \"tmp\": expected an absolute path",
        ),
        (
            "tmpfs = \"/run:noexec\"",
            "3:9: services.app.tmpfs: invalid tmpfs \"/run:noexec\": unknown option \"noexec\"",
        ),
        (
            "tmpfs = [\"/run\", \"/run:size=1m\"]",
            "3:18: services.app.tmpfs[1]: tmpfs \"/run\" is listed twice",
        ),
        (
            "security_opt = [\"apparmor=unconfined\"]",
            "3:17: services.app.security_opt[0]: unsupported security option \"apparmor=unconfined\"",
        ),
        (
            "security_opt = [\"seccomp:\"]",
            "3:17: services.app.security_opt[0]: seccomp= needs a profile path",
        ),
        (
            "userns_mode = \"private\"",
            "3:15: services.app.userns_mode: unknown userns_mode \"private\" (expected \"host\" or \"auto\")",
        ),
        (
            "userns_mode = \"auto\"\nlimits.storage = \"1g\"",
            "3:15: services.app.userns_mode: userns_mode = \"auto\" cannot be combined with limits.storage",
        ),
    ];
    for (body, want) in cases {
        let got = err(&format!("{head}{body}\n"));
        assert!(
            got.starts_with(&format!("compose.toml:{want}")),
            "{body}\n  got:  {got}\n  want: {want}"
        );
    }
}

#[test]
fn the_demo_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/demo.toml");
    let compose = load(&path).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(compose.start_order(), ["flaky", "web", "client"]);
    assert_eq!(
        compose.services["client"].depends_on["web"],
        Condition::Healthy
    );
    assert!(compose.services["web"].healthcheck.is_some());
    assert_eq!(
        compose.services["flaky"].restart,
        RestartPolicy::OnFailure {
            max_restarts: Some(5)
        }
    );
}

#[test]
fn the_schema_in_the_module_doc_parses() {
    let source = include_str!("../compose.rs");
    let doc: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```toml")
        .skip(1)
        .take_while(|line| *line != "```")
        .collect();
    assert!(doc.len() > 30, "the schema block is in the module doc");
    // With the files its secrets and configs name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db_pw.txt"), "pw").unwrap();
    std::fs::write(dir.path().join("app.ini"), "[app]").unwrap();
    let path = dir.path().join("compose.toml");
    std::fs::write(&path, doc.join("\n")).unwrap();
    let compose = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let web = &compose.services["web"];
    assert_eq!(web.networks, s(&["back"]));
    assert_eq!(web.limits.memory_swap, Some(512 << 20));
}

#[test]
fn volumes_short_and_long_forms() {
    let compose = ok(r#"
[volumes.data]
labels = ["tier=db"]
driver_opts = { size = "1g" }
[volumes.scratch]
driver_opts = { type = "tmpfs", device = "tmpfs", o = "size=64m,uid=1000" }
[volumes.shared]
name = "team-shared"
external = true

[services.db]
image = "host"
tmpfs = ["/run"]
volumes = [
    "data:/var/lib/db:ro,rslave",
    "./site:/www",
    "/cache",
    { type = "volume", source = "shared", target = "/shared", read_only = true, volume = { nocopy = true } },
    { type = "bind", source = "../conf", target = "/etc/app/", bind = { propagation = "rshared", create_host_path = true, selinux = "z" } },
    { type = "tmpfs", target = "/scratch", tmpfs = { size = 65536, mode = 0o700 } },
    { type = "tmpfs", target = "/scratch2", tmpfs = { size = "64m", mode = "1777" } },
]
"#);
    assert_eq!(
        compose.volumes["data"],
        VolumeDef {
            name: None,
            external: false,
            labels: BTreeMap::from([("tier".to_string(), "db".to_string())]),
            driver_opts: BTreeMap::from([("size".to_string(), "1g".to_string())]),
        }
    );
    assert_eq!(
        forge_runtime::VolumeKind::from_options(&compose.volumes["scratch"].driver_opts).unwrap(),
        forge_runtime::VolumeKind::Tmpfs {
            data: "size=64m,uid=1000".into()
        }
    );
    assert_eq!(
        compose.volumes["shared"].name.as_deref(),
        Some("team-shared")
    );
    assert!(compose.volumes["shared"].external);
    let mounts = &compose.services["db"].volumes;
    let brief: Vec<(MountType, &str, &str, bool)> = mounts
        .iter()
        .map(|m| (m.kind, m.source.as_str(), m.target.as_str(), m.read_only))
        .collect();
    // `compose.toml` is in the working directory: relative binds start there.
    let cwd = std::env::current_dir().unwrap();
    let site = cwd.join("site").display().to_string();
    let conf = cwd.parent().unwrap().join("conf").display().to_string();
    assert_eq!(
        brief,
        [
            (MountType::Volume, "data", "/var/lib/db", true),
            (MountType::Bind, site.as_str(), "/www", false),
            (MountType::Volume, "", "/cache", false),
            (MountType::Volume, "shared", "/shared", true),
            (MountType::Bind, conf.as_str(), "/etc/app", false),
            (MountType::Tmpfs, "", "/scratch", false),
            (MountType::Tmpfs, "", "/scratch2", false),
        ]
    );
    assert_eq!(mounts[0].propagation, Propagation::Rslave);
    assert!(
        mounts[1].create_source,
        "the short form makes a missing host directory"
    );
    assert!(mounts[3].nocopy);
    assert_eq!(mounts[4].propagation, Propagation::Rshared);
    assert!(mounts[4].create_source);
    assert_eq!(mounts[5].tmpfs_options, "size=65536,mode=700");
    assert_eq!(mounts[6].tmpfs_options, "size=64m,mode=1777");

    let long_bind = ok(r#"
[services.a]
image = "host"
volumes = [{ type = "bind", source = "/srv", target = "/srv" }]
"#);
    assert!(
        !long_bind.services["a"].volumes[0].create_source,
        "the long form refuses a missing source unless create_host_path, as Compose"
    );
}

#[test]
fn volume_errors_are_placed_at_the_element() {
    let head = "[services.web]\nimage = \"host\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "volumes = [\"data:/db\"]\n",
            "compose.toml:3:12: services.web.volumes[0]: undefined volume \"data\" (define it as [volumes.data])",
        ),
        (
            "volumes = [\"/a\", \"db\"]\n",
            "compose.toml:3:18: services.web.volumes[1]: invalid volume \"db\": the destination \"db\" must be an absolute path",
        ),
        (
            "volumes = [\"xx:/proc/sys\"]\n[volumes.xx]\n",
            "compose.toml:3:12: services.web.volumes[0]: invalid volume \"xx:/proc/sys\": the destination \"/proc/sys\" is in /proc",
        ),
        (
            "volumes = [\"/srv:/srv:rw,ro\"]\n",
            "compose.toml:3:12: services.web.volumes[0]: invalid volume \"/srv:/srv:rw,ro\": ro and rw contradict each other",
        ),
        (
            "volumes = [\"/a:/d\", \"/b:/d/\"]\n",
            "compose.toml:3:21: services.web.volumes[1]: /d is the destination of two volumes",
        ),
        (
            "tmpfs = \"/run\"\nvolumes = [\"/a:/run\"]\n",
            "compose.toml:4:12: services.web.volumes[0]: /run is also a tmpfs of this service",
        ),
        (
            "volumes = [{ source = \"/a\", target = \"/a\" }]\n",
            "compose.toml:3:12: services.web.volumes[0]: missing key \"type\" (volume, bind or tmpfs)",
        ),
        (
            "volumes = [{ type = \"npipe\", target = \"/a\" }]\n",
            "compose.toml:3:21: services.web.volumes[0].type: unknown mount type \"npipe\"",
        ),
        (
            "volumes = [{ type = \"bind\", target = \"/a\" }]\n",
            "compose.toml:3:12: services.web.volumes[0]: a bind needs \"source\" (a host path)",
        ),
        (
            "volumes = [{ type = \"tmpfs\", target = \"/a\", volume = { nocopy = true } }]\n",
            "compose.toml:3:54: services.web.volumes[0].volume: volume does not apply to type \"tmpfs\"",
        ),
        (
            "volumes = [{ type = \"tmpfs\", target = \"/a\", tmpfs = { size = \"lots\" } }]\n",
            "compose.toml:3:62: services.web.volumes[0].tmpfs.size: expected a size",
        ),
        (
            "volumes = [{ type = \"bind\", source = \"/a\", target = \"/a\", bind = { propagaton = \"slave\" } }]\n",
            "compose.toml:3:68: services.web.volumes[0].bind.propagaton: unknown key \"propagaton\" (did you mean \"propagation\"?)",
        ),
        (
            "[volumes.dd]\nexternal = true\nlabels = { a = \"b\" }\n",
            "compose.toml:5:1: volumes.dd.labels: an external volume takes only \"name\", not \"labels\"",
        ),
        (
            "[volumes.dd]\ndriver_opts = { size = \"\" }\n",
            "compose.toml:4:15: volumes.dd.driver_opts: invalid volume option size: it needs a size, like size=1g",
        ),
        (
            "[volumes.dd]\ndriver_opts = { type = \"nfs\", o = \"addr=10.0.0.1\" }\n",
            "compose.toml:4:15: volumes.dd.driver_opts: invalid volume option type=\"nfs\": not supported",
        ),
        (
            "[volumes.dd]\nname = \"x\"\n",
            "compose.toml:4:8: volumes.dd.name: invalid volume name \"x\"",
        ),
        (
            "[volumes.x]\n",
            "compose.toml:3:10: volumes.x: invalid volume name \"x\": Forge's volume names have at least two characters",
        ),
        (
            "[volumes.dd]\ndriver = \"nfs\"\n",
            "compose.toml:4:10: volumes.dd.driver: unknown volume driver \"nfs\": Forge has only \"local\"",
        ),
    ];
    for (tail, want) in cases {
        let got = err(&format!("{head}{tail}"));
        assert!(
            got.starts_with(want),
            "for {tail:?}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn env_files_are_read_relative_to_the_file_and_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.env"),
        "A=1\nB='two # kept'\nC=from-file\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.env"), "A=2\n").unwrap();
    std::fs::write(dir.path().join("bad.env"), "OK=1\n9X=2\n").unwrap();
    let path = dir.path().join("compose.toml");
    let load = |service: &str| {
        parse(
            &path,
            &format!("[services.web]\nimage = \"host\"\n{service}"),
        )
    };
    let compose = load(
        "env_file = [\"a.env\", { path = \"b.env\" }, { path = \"none.env\", required = false }]\nenvironment = { C = \"from-compose\" }\n",
    )
    .unwrap();
    assert_eq!(
        compose.services["web"].environment,
        s(&[
            "A=1",
            "B=two # kept",
            "C=from-file",
            "A=2",
            "C=from-compose"
        ]),
        "files in order, then environment (later keys win when the container is made)"
    );
    let err = load("env_file = \"bad.env\"\n").unwrap_err().to_string();
    let bad = dir.path().join("bad.env");
    assert!(
        err.ends_with(&format!(
            ":3:12: services.web.env_file: {}:2: invalid variable name \"9X\": expected KEY=VALUE with a name of letters, digits and '_'",
            bad.display()
        )),
        "{err}"
    );
    let err = load("env_file = [\"none.env\"]\n").unwrap_err().to_string();
    assert!(
        err.contains(":3:13: services.web.env_file[0]: ")
            && err.contains("none.env: cannot read the env file: No such file or directory"),
        "{err}"
    );
}
