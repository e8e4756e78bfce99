//! compose.yaml: the same model as compose.toml, YAML's own forms, interpolation and profiles.

use super::*;

fn yaml(text: &str) -> Result<Compose, String> {
    parse(Path::new("compose.yaml"), text).map_err(|e| e.to_string())
}

fn ok(text: &str) -> Compose {
    yaml(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `compose.yaml` (and the other files) in a new directory and loads it.
fn load_in(files: &[(&str, &str)], opts: &LoadOptions) -> Result<Compose, String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    load_with(&dir.path().join("compose.yaml"), opts).map_err(|e| {
        e.to_string()
            .replace(&dir.path().display().to_string(), "DIR")
    })
}

#[test]
fn yaml_and_toml_give_the_same_model() {
    let toml = r#"
name = "shop"
[networks.back]
subnet = "10.89.3.0/24"
[services.db]
image = "host"
command = ["sleep", "1d"]
environment = { A = "1", B = "two" }
networks = ["back"]
healthcheck = { test = ["CMD", "true"], interval = "2s", retries = 5 }
[services.web]
image = "host"
command = "sh -c 'sleep 1d'"
depends_on = { db = { condition = "service_healthy" } }
ports = ["8080:80"]
restart = "on-failure:3"
limits = { memory = "64m", pids = 50 }
networks = ["back"]
stop_grace_period = "3s"
"#;
    let yaml = r#"
name: shop
networks:
  back:
    subnet: 10.89.3.0/24
services:
  db:
    image: host
    command: [sleep, 1d]
    environment:
      A: 1
      B: two
    networks: [back]
    healthcheck:
      test: [CMD, "true"]
      interval: 2s
      retries: 5
  web:
    image: host
    command: sh -c 'sleep 1d'
    depends_on:
      db:
        condition: service_healthy
    ports:
      - 8080:80
    restart: on-failure:3
    mem_limit: 64m
    pids_limit: 50
    networks:
      - back
    stop_grace_period: 3s
"#;
    let from_toml = parse(Path::new("compose.toml"), toml).unwrap();
    let mut from_yaml = ok(yaml);
    from_yaml.path = from_toml.path.clone();
    assert_eq!(from_yaml, from_toml);
}

#[test]
fn plain_scalars_follow_the_core_schema() {
    // `no` is a string in YAML 1.2 (and in Docker Compose): not false.
    let c =
        ok("services:\n  a:\n    image: host\n    restart: no\n    init: true\n    user: 1000\n");
    assert_eq!(c.services["a"].restart, RestartPolicy::No);
    assert!(c.services["a"].init);
    assert_eq!(c.services["a"].user.as_deref(), Some("1000"));
    let e = yaml("services:\n  a:\n    image: host\n    init: yes\n").unwrap_err();
    assert_eq!(
        e,
        "compose.yaml:4:11: services.a.init: expected true or false, found a string"
    );
    let e = yaml("services:\n  a:\n    image: 12\n").unwrap_err();
    assert!(
        e.ends_with("expected an image name, found an integer"),
        "{e}"
    );
    let c = ok("services:\n  a:\n    image: \"12\"\n    environment: {X: 0x1F, Y: 0o17, Z: 1.5, W: '007', V: ~}\n");
    assert_eq!(c.services["a"].image, "12");
    // V: null takes the caller's value, which it does not have here.
    assert_eq!(
        c.services["a"].environment,
        ["X=31", "Y=15", "Z=1.5", "W=007"]
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let c = ok(r#"
x-base: &base
  image: host
  restart: always
  environment: &env
    LEVEL: info
services:
  a:
    <<: *base
    command: [sleep, 1d]
  b:
    <<: *base
    restart: "no"
    environment:
      <<: *env
      EXTRA: "1"
  c:
    <<: [{image: first, init: true}, *base]
"#);
    assert_eq!(c.services["a"].restart, RestartPolicy::Always);
    assert_eq!(c.services["a"].environment, ["LEVEL=info"]);
    assert_eq!(
        c.services["b"].restart,
        RestartPolicy::No,
        "the map's own key wins"
    );
    assert_eq!(c.services["b"].environment, ["EXTRA=1", "LEVEL=info"]);
    assert_eq!(c.services["c"].image, "first", "the first merged map wins");
    assert!(c.services["c"].init);
    assert_eq!(c.services["c"].restart, RestartPolicy::Always);
}

#[test]
fn yaml_errors_name_line_column_and_field() {
    let cases = [
        ("services:\n  web:\n    image: host\n    restrat: no\n", "compose.yaml:4:5: services.web.restrat: unknown key \"restrat\" (did you mean \"restart\"?)"),
        ("services:\n  web:\n    image: host\n  web:\n    image: x\n", "compose.yaml:4:3: duplicate key \"web\" in this mapping"),
        ("services:\n  web:\n    image: [host\n", "compose.yaml:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"),
        ("services:\n  web:\n    <<: *nothing\n", "compose.yaml:3:9: invalid YAML: while parsing node, found unknown anchor"),
        ("services:\n  web:\n    image: host\n---\nservices: {}\n", "compose.yaml:4:1: a compose file holds one YAML document (found a second `---`)"),
        ("services:\n  web: !reset\n", "compose.yaml:2:8: the tag !reset is not supported (Compose's !reset and !override are not supported yet)"),
        ("services:\n  web:\n    <<: 3\n", "compose.yaml:3:9: a merge key (<<) takes a mapping or a list of them"),
        ("services:\n  web:\n    image: host\n    ports: [80: 80]\n", "compose.yaml:4:13: services.web.ports[0].80: unknown key \"80\" (expected one of: target,"),
        ("", "compose.yaml:1:1: services: no services defined (add a [services.NAME] table)"),
    ];
    for (text, want) in cases {
        let got = yaml(text).expect_err(text);
        assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn aliases_cannot_blow_up_the_file() {
    let mut text = String::from("x-0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = i - 1;
        text.push_str(&format!(
            "x-{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    text.push_str("services:\n  a:\n    image: host\n");
    let e = yaml(&text).unwrap_err();
    assert!(
        e.contains("aliases expand the file to too many values"),
        "{e}"
    );
}

#[test]
fn interpolation_from_the_env_file_and_the_caller() {
    std::env::set_var("FORGE_TEST_Y_CALLER", "from-caller");
    std::env::set_var("FORGE_TEST_Y_BOTH", "caller-wins");
    let file = r#"
services:
  web:
    image: "host${FORGE_TEST_Y_SUFFIX:-}"
    command: [echo, "${FORGE_TEST_Y_CALLER}", "${FORGE_TEST_Y_BOTH}", "${FORGE_TEST_Y_FILE}", "$$HOME", "${FORGE_TEST_Y_UNSET}"]
    environment:
      PORT: ${FORGE_TEST_Y_PORT:-80}
      FORGE_TEST_Y_FILE:
    deploy:
      replicas: ${FORGE_TEST_Y_REPLICAS}
"#;
    let env =
        "FORGE_TEST_Y_BOTH=file-loses\nFORGE_TEST_Y_FILE=from-file\nFORGE_TEST_Y_REPLICAS=1\n";
    let c = load_in(
        &[("compose.yaml", file), (".env", env)],
        &LoadOptions::default(),
    )
    .unwrap();
    let web = &c.services["web"];
    assert_eq!(web.image, "host");
    assert_eq!(
        web.command.as_deref().unwrap(),
        [
            "echo",
            "from-caller",
            "caller-wins",
            "from-file",
            "$HOME",
            ""
        ]
    );
    assert_eq!(web.environment, ["PORT=80", "FORGE_TEST_Y_FILE=from-file"]);
    assert_eq!(
        c.warnings,
        ["The \"FORGE_TEST_Y_UNSET\" variable is not set. Defaulting to a blank string."]
    );
    // Without the .env file, replicas is "" — not a number.
    let e = load_in(&[("compose.yaml", file)], &LoadOptions::default()).unwrap_err();
    assert!(e.contains("services.web.deploy.replicas"), "{e}");
    // --env-file replaces .env.
    let opts = LoadOptions::default();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.env");
    std::fs::write(&other, "FORGE_TEST_Y_REPLICAS=1\nFORGE_TEST_Y_FILE=other\n").unwrap();
    let opts = LoadOptions {
        env_files: vec![other],
        ..opts
    };
    let c = load_in(
        &[
            ("compose.yaml", file),
            (".env", "FORGE_TEST_Y_FILE=dotenv\n"),
        ],
        &opts,
    )
    .unwrap();
    assert_eq!(c.services["web"].environment[1], "FORGE_TEST_Y_FILE=other");
    let missing = LoadOptions {
        env_files: vec![dir.path().join("missing.env")],
        ..LoadOptions::default()
    };
    let e = load_in(&[("compose.yaml", file)], &missing).unwrap_err();
    assert!(
        e.contains("missing.env: cannot read the env file: No such file or directory"),
        "{e}"
    );
}

#[test]
fn interpolation_errors_are_placed_at_the_value() {
    let e = yaml("services:\n  web:\n    image: host\n    command: echo $(date)\n").unwrap_err();
    assert_eq!(e, "compose.yaml:4:14: services.web.command: invalid interpolation format in \"echo $(date)\": you may need to escape any $ with another $");
    let e =
        yaml("services:\n  web:\n    image: ${FORGE_TEST_Y_NEVER:?give an image}\n").unwrap_err();
    assert_eq!(e, "compose.yaml:3:12: services.web.image: required variable FORGE_TEST_Y_NEVER is missing a value: give an image");
    // Keys are not interpolated, and compose.toml's strings are literal.
    let c = parse(
        Path::new("compose.toml"),
        "[services.web]\nimage = \"host\"\ncommand = [\"sh\", \"-c\", \"echo $(hostname) $!\"]\n",
    )
    .unwrap();
    assert_eq!(
        c.services["web"].command.as_deref().unwrap()[2],
        "echo $(hostname) $!"
    );
}

#[test]
fn profiles_enable_services() {
    let file = r#"
services:
  app:
    image: host
  debug:
    image: host
    profiles: [tools, debug]
  seed:
    image: host
    profiles: [seed]
    depends_on: [app]
"#;
    let names = |c: &Compose| c.services.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ok(file)), ["app"]);
    let with = |profiles: &[&str]| LoadOptions {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        ..LoadOptions::default()
    };
    let c = load_in(&[("compose.yaml", file)], &with(&["debug"])).unwrap();
    assert_eq!(names(&c), ["app", "debug"]);
    let c = load_in(&[("compose.yaml", file)], &with(&["*"])).unwrap();
    assert_eq!(names(&c), ["app", "debug", "seed"]);
    let c = load_in(
        &[
            ("compose.yaml", file),
            (".env", "COMPOSE_PROFILES=seed,tools\n"),
        ],
        &with(&[]),
    )
    .unwrap();
    assert_eq!(names(&c), ["app", "debug", "seed"]);
    let needs = "services:\n  app:\n    image: host\n    depends_on: [debug]\n  debug:\n    image: host\n    profiles: [debug]\n";
    assert_eq!(
        yaml(needs).unwrap_err(),
        "compose.yaml:4:18: services.app.depends_on[0]: service app depends on debug, whose profiles (debug) are not enabled (enable one with --profile debug)"
    );
    let e = yaml("services:\n  a:\n    image: host\n    profiles: [\"-x\"]\n").unwrap_err();
    assert!(e.contains("invalid profile name \"-x\""), "{e}");
    let e = yaml("services:\n  a:\n    image: host\n    profiles: [x]\n").unwrap_err();
    assert_eq!(e, "compose.yaml:2:3: services: no service is enabled: every one is in a profile (enable one with --profile x)");
}

#[test]
fn default_files_are_found_in_compose_order() {
    let dir = tempfile::tempdir().unwrap();
    assert!(find_default(dir.path()).is_none());
    std::fs::write(dir.path().join("compose.toml"), "").unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), "").unwrap();
    let (first, others) = find_default(dir.path()).unwrap();
    assert_eq!(first, dir.path().join("docker-compose.yml"));
    assert_eq!(others, [dir.path().join("compose.toml")]);
}

#[test]
fn ports_take_numbers_ranges_and_the_long_form() {
    let c = ok(r#"
services:
  web:
    image: host
    ports:
      - 80
      - "9000-9001:90-91"
      - target: 53
        published: "5353"
        host_ip: 127.0.0.1
        protocol: udp
        mode: host
        name: dns
      - {target: 443, published: 8443}
      - {target: 22}
"#);
    let got: Vec<String> = c.services["web"]
        .ports
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "0.0.0.0:0->80/tcp",
            "0.0.0.0:9000->90/tcp",
            "0.0.0.0:9001->91/tcp",
            "127.0.0.1:5353->53/udp",
            "0.0.0.0:8443->443/tcp",
            "0.0.0.0:0->22/tcp",
        ]
    );
    let cases = [
        ("ports: [{published: 80}]", "compose.yaml:4:13: services.web.ports[0]: missing key \"target\""),
        ("ports: [{target: 80, mode: swarm}]", "compose.yaml:4:32: services.web.ports[0].mode: unknown mode \"swarm\""),
        ("ports: [\"8080-8081:80\"]", "compose.yaml:4:13: services.web.ports[0]: invalid port mapping \"8080-8081:80\": the host range has 2 ports"),
        ("ports: [\"8080:80\", \"8080:81\"]", "compose.yaml:4:24: services.web.ports[1]: host port 8080/tcp is already published by service web"),
    ];
    for (line, want) in cases {
        let got = yaml(&format!("services:\n  web:\n    image: host\n    {line}\n")).unwrap_err();
        assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn networks_map_form_gives_aliases_and_a_fixed_address() {
    let c = ok(r#"
networks:
  back:
    subnet: 10.89.9.0/24
  front:
services:
  db:
    image: host
    networks:
      back:
        aliases: [database, primary]
        ipv4_address: 10.89.9.5
      front:
        aliases: [database]
"#);
    let db = &c.services["db"];
    assert_eq!(db.networks, ["back", "front"]);
    assert_eq!(db.aliases, ["database", "primary"]);
    assert_eq!(db.ipv4_address, Some(Ipv4Addr::new(10, 89, 9, 5)));
    let svc = |networks: &str| {
        yaml(&format!(
            "networks:\n  back:\n    subnet: 10.89.9.0/24\n  front:\nservices:\n  db:\n    image: host\n    networks: {networks}\n  other:\n    image: host\n    networks: {{back: {{ipv4_address: 10.89.9.7}}}}\n"
        ))
        .unwrap_err()
    };
    let cases = [
        ("{front: {ipv4_address: 10.89.9.5}}", "compose.yaml:8:38: services.db.networks.front.ipv4_address: a fixed ipv4_address needs a subnet: give network \"front\" one"),
        ("{back: {ipv4_address: 10.89.8.5}}", "compose.yaml:8:37: services.db.networks.back.ipv4_address: 10.89.8.5 is not a free host address of network \"back\" (10.89.9.0/24)"),
        ("{back: {ipv4_address: 10.89.9.1}}", "10.89.9.1 is not a free host address"),
        ("{back: {ipv4_address: 10.89.9.7}}", "compose.yaml:11:37: services.other.networks.back.ipv4_address: 10.89.9.7 is also service db's ipv4_address"),
        ("{back: , front: {ipv4_address: 10.89.9.5}}", "ipv4_address is supported on the service's first network only"),
        ("{back: {priority: 5}}", "unknown key \"priority\""),
        ("{nope: }", "unknown network \"nope\""),
    ];
    for (networks, want) in cases {
        let got = svc(networks);
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn networks_take_name_and_external() {
    let c = ok("networks:\n  outside:\n    external: true\n    name: ext1\n  own:\n    name: shared-own\nservices:\n  web:\n    image: host\n    networks: [outside, own]\n");
    assert!(c.networks["outside"].external);
    assert_eq!(c.networks["outside"].name.as_deref(), Some("ext1"));
    assert_eq!(c.networks["own"].name.as_deref(), Some("shared-own"));
    assert!(
        !c.networks.contains_key("default"),
        "no service joins default"
    );
    let e = yaml("networks:\n  outside:\n    external: true\n    subnet: 10.89.1.0/24\nservices:\n  web:\n    image: host\n").unwrap_err();
    assert_eq!(e, "compose.yaml:4:13: networks.outside.subnet: an external network is made by forge network create: subnet cannot be given here");
    let e = yaml("networks:\n  own:\n    name: \"bad name\"\nservices:\n  web:\n    image: host\n")
        .unwrap_err();
    assert!(
        e.starts_with("compose.yaml:3:11: networks.own.name: invalid network name \"bad name\""),
        "{e}"
    );
}

#[test]
fn secrets_and_configs_from_files_become_read_only_binds() {
    let file = r#"
secrets:
  db_pw:
    file: ./pw.txt
configs:
  app:
    file: conf/app.ini
services:
  web:
    image: host
    secrets: [db_pw, {source: db_pw, target: other}, {source: db_pw, target: /etc/pw}]
    configs: [app, {source: app, target: /etc/app.ini}]
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), file).unwrap();
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/app.ini"), "[a]").unwrap();
    let c = load(&dir.path().join("compose.yaml")).unwrap();
    let mounts: Vec<(String, String, bool)> = c.services["web"]
        .volumes
        .iter()
        .map(|m| {
            let source = m.source.replace(&dir.path().display().to_string(), "DIR");
            (source, m.target.clone(), m.read_only)
        })
        .collect();
    let m = |s: &str, t: &str| (s.to_string(), t.to_string(), true);
    assert_eq!(
        mounts,
        [
            m("DIR/pw.txt", "/run/secrets/db_pw"),
            m("DIR/pw.txt", "/run/secrets/other"),
            m("DIR/pw.txt", "/etc/pw"),
            m("DIR/conf/app.ini", "/app"),
            m("DIR/conf/app.ini", "/etc/app.ini"),
        ]
    );
    let cases = [
        ("secrets:\n  s:\n    file: ./missing\nservices:\n  web:\n    image: host\n", "compose.yaml:3:11: secrets.s.file: DIR/missing: no such file"),
        ("secrets:\n  s:\n    environment: FORGE_TEST_UNSET_TOKEN\nservices:\n  web:\n    image: host\n", "compose.yaml:3:18: secrets.s.environment: the variable FORGE_TEST_UNSET_TOKEN is not set"),
        ("secrets:\n  s:\n    content: x\nservices:\n  web:\n    image: host\n", "compose.yaml:3:14: secrets.s.content: content is for configs"),
        ("configs:\n  c:\n    content: x\n    file: pw.txt\nservices:\n  web:\n    image: host\n", "compose.yaml:3:5: configs.c: give one of file, environment or content"),
        ("services:\n  web:\n    image: host\n    secrets: [nope]\n", "compose.yaml:4:15: services.web.secrets[0]: undefined secret \"nope\" (define it under the top-level secrets)"),
        ("configs:\n  c:\n    file: pw.txt\nservices:\n  web:\n    image: host\n    configs: [{source: c, mode: 0o400}]\n", "compose.yaml:7:33: services.web.configs[0].mode: mode is not supported"),
        ("configs:\n  c:\n    file: pw.txt\nservices:\n  web:\n    image: host\n    configs: [{source: c, target: /x}]\n    tmpfs: [/x]\n", "compose.yaml:7:15: services.web.configs[0]: /x is also the destination of another of the service's mounts"),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
        let got = load(&dir.path().join("compose.yaml"))
            .unwrap_err()
            .to_string()
            .replace(&dir.path().display().to_string(), "DIR");
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn depends_on_required_false_drops_a_missing_dependency_with_a_warning() {
    let c = ok(r#"
services:
  web:
    image: host
    depends_on:
      cache: {condition: service_started, required: false}
      db: {condition: service_started, required: false, restart: false}
      tools: {required: false}
  db:
    image: host
  tools:
    image: host
    profiles: [tools]
"#);
    let deps: Vec<&String> = c.services["web"].depends_on.keys().collect();
    assert_eq!(deps, ["db"]);
    assert_eq!(
        c.warnings,
        [
            "service web: optional dependency \"cache\" is not an enabled service: starting without it",
            "service web: optional dependency \"tools\" is not an enabled service: starting without it",
        ]
    );
    let c = yaml("services:\n  web:\n    image: host\n    depends_on: {db: {restart: true}, q: {restart: false}}\n  db:\n    image: host\n    deploy: {replicas: 2}\n  q:\n    image: host\n").unwrap();
    let restarts: Vec<&String> = c.services["web"].restarts_with.iter().collect();
    assert_eq!(restarts, ["db-1", "db-2"]);
    let e = yaml("services:\n  web:\n    image: host\n    depends_on: {db: {required: true}}\n")
        .unwrap_err();
    assert!(e.contains("unknown service \"db\""), "{e}");
}

#[test]
fn extends_merges_by_composes_rules_in_this_file_and_another() {
    let common = r#"
services:
  base:
    image: host
    command: [sleep, 1d]
    environment: [LEVEL=info, MODE=base]
    labels: {tier: back}
    ports: ["80"]
    volumes: ["./data:/data", "./logs:/logs"]
    env_file: ./base.env
    healthcheck:
      test: [CMD, "false"]
      interval: 5s
  chained:
    extends: base
    user: "1000"
"#;
    let file = r#"
services:
  web:
    extends:
      file: sub/common.yaml
      service: chained
    command: [sh, -c, "sleep 2d"]
    environment:
      MODE: web
    ports: ["90"]
    volumes: ["./web-logs:/logs"]
    healthcheck:
      test: [CMD, "true"]
  local:
    extends: web
    ports: ["91"]
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/common.yaml"), common).unwrap();
    std::fs::write(dir.path().join("sub/base.env"), "FROM_FILE=1\n").unwrap();
    std::fs::write(dir.path().join("compose.yaml"), file).unwrap();
    let c = load(&dir.path().join("compose.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let web = &c.services["web"];
    let d = dir.path().display().to_string();
    assert_eq!(web.command.as_deref().unwrap(), ["sh", "-c", "sleep 2d"]);
    assert_eq!(web.user.as_deref(), Some("1000"), "through chained");
    assert_eq!(web.environment, ["FROM_FILE=1", "LEVEL=info", "MODE=web"]);
    assert_eq!(web.labels["tier"], "back");
    let ports: Vec<String> = web.ports.iter().map(|p| p.to_string()).collect();
    assert_eq!(ports, ["0.0.0.0:0->80/tcp", "0.0.0.0:0->90/tcp"]);
    let volumes: Vec<(String, String)> = web
        .volumes
        .iter()
        .map(|m| (m.source.replace(&d, "DIR"), m.target.clone()))
        .collect();
    assert_eq!(
        volumes,
        [
            ("DIR/sub/data".to_string(), "/data".to_string()),
            ("DIR/web-logs".to_string(), "/logs".to_string())
        ],
        "the base's relative paths are its file's; /logs is the local one"
    );
    let health = web.healthcheck.as_ref().unwrap();
    assert_eq!(health.test, HealthTest::Cmd(vec!["true".into()]));
    assert_eq!(health.interval, Duration::from_secs(5));
    let local_ports: Vec<String> = c.services["local"]
        .ports
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(local_ports.len(), 3);
    assert_eq!(c.services["local"].environment, web.environment);

    let cases = [
        (
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
            "compose.yaml:5:14: services.b.extends: extends cycle: a -> b -> a",
        ),
        (
            "services:\n  a:\n    extends: nope\n",
            "compose.yaml:3:14: services.a.extends: extends unknown service \"nope\"",
        ),
        (
            "services:\n  a:\n    extends: {file: missing.yaml, service: x}\n",
            "DIR/missing.yaml: cannot read: No such file or directory",
        ),
        (
            "services:\n  a:\n    extends: {file: sub/common.yaml, service: x}\n",
            "compose.yaml:3:14: services.a.extends: DIR/sub/common.yaml has no service \"x\"",
        ),
        (
            "services:\n  a:\n    extends: {servce: x}\n",
            "compose.yaml:3:15: services.a.extends.servce: unknown key \"servce\"",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
        let got = load(&dir.path().join("compose.yaml"))
            .unwrap_err()
            .to_string()
            .replace(&d, "DIR");
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn extends_works_in_compose_toml_too() {
    let c = parse(
        Path::new("compose.toml"),
        "[services.a]\nimage = \"host\"\ninit = true\n[services.b]\nextends = \"a\"\ncommand = \"sleep 1\"\n",
    )
    .unwrap();
    assert_eq!(c.services["b"].image, "host");
    assert!(c.services["b"].init);
    assert_eq!(c.services["a"].command, None);
}

#[test]
fn replicas_are_services_of_their_own_answering_to_the_services_name() {
    let c = ok(r#"
services:
  web:
    image: host
    deploy: {replicas: 3}
    ports: ["80"]
    networks:
      default:
        aliases: [www]
  worker:
    image: host
    scale: 2
  client:
    image: host
    depends_on:
      web: {condition: service_started}
"#);
    let names: Vec<&String> = c.services.keys().collect();
    assert_eq!(
        names,
        ["client", "web-1", "web-2", "web-3", "worker-1", "worker-2"]
    );
    assert_eq!(c.services["web-2"].name, "web-2");
    assert_eq!(c.services["web-2"].aliases, ["web", "www"]);
    let deps: Vec<&String> = c.services["client"].depends_on.keys().collect();
    assert_eq!(deps, ["web-1", "web-2", "web-3"]);
    assert_eq!(c.start_order().last().map(String::as_str), Some("worker-2"));
    let cases = [
        ("deploy: {replicas: 2}\n    ports: [\"8080:80\"]", "compose.yaml:4:24: services.web.deploy.replicas: 2 replicas cannot share host port 8080"),
        ("deploy: {replicas: 2}\n    container_name: one", "2 replicas cannot share one container_name"),
        ("scale: 2\n    deploy: {replicas: 2}", "compose.yaml:4:12: services.web.scale: give scale or deploy.replicas, not both"),
        ("scale: 1001", "expected a number of containers from 0 to 1000"),
    ];
    for (keys, want) in cases {
        let got = yaml(&format!("services:\n  web:\n    image: host\n    {keys}\n")).unwrap_err();
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
    // 0 replicas: no container, and a dependant starts without it.
    let c = ok("services:\n  web:\n    image: host\n    deploy: {replicas: 0}\n    ports: [\"8080:80\"]\n  client:\n    image: host\n    depends_on: [web]\n");
    let names: Vec<&String> = c.services.keys().collect();
    assert_eq!(names, ["client"]);
    assert!(c.services["client"].depends_on.is_empty());
    assert_eq!(
        c.warnings,
        ["service client: dependency \"web\" has 0 replicas: starting without it"]
    );
    let e = yaml("services:\n  web:\n    image: host\n    scale: 2\n  web-1:\n    image: host\n")
        .unwrap_err();
    assert!(
        e.contains("replica web-1 would have the name of another service"),
        "{e}"
    );
}

#[test]
fn several_files_merge_in_order_and_errors_name_the_file_they_are_in() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap();
        dir.path().join(name)
    };
    let base = write(
        "compose.yaml",
        "services:\n  web:\n    image: host\n    command: [sleep, 1d]\n    environment: {A: base, B: base}\n    volumes: [./data:/data]\n",
    );
    let over = write(
        "compose.override.toml",
        "[services.web]\nenvironment = [\"B=over\"]\nrestart = \"always\"\n[services.extra]\nimage = \"host\"\n",
    );
    let c = load_all(&[base.clone(), over.clone()], &LoadOptions::default()).unwrap();
    let web = &c.services["web"];
    assert_eq!(web.environment, ["A=base", "B=over"]);
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.command.as_deref().unwrap(), ["sleep", "1d"]);
    assert!(c.services.contains_key("extra"));
    assert_eq!(c.path, base);
    let bad = write("bad.yaml", "services:\n  web:\n    restart: sometimes\n");
    let e = load_all(&[base.clone(), bad], &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:3:14: services.web.restart: unknown restart policy \"sometimes\" (expected no, always, on-failure[:N], unless-stopped)",
            dir.path().join("bad.yaml").display()
        )
    );
    // A service extended from another file is placed in that file too.
    write(
        "common.yaml",
        "services:\n  base:\n    image: host\n    init: maybe\n",
    );
    let ext = write(
        "ext.yaml",
        "services:\n  web:\n    extends: {file: common.yaml, service: base}\n",
    );
    let e = load(&ext).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:4:11: services.web.init: expected true or false, found a string",
            dir.path().join("common.yaml").display()
        )
    );
}

#[test]
fn network_mode_none_and_the_terminal_keys() {
    let c = ok("services:\n  a:\n    image: host\n    network_mode: none\n    tty: false\n    stdin_open: false\n");
    assert!(c.services["a"].networks.is_empty());
    assert!(!c.networks.contains_key("default"));
    let cases = [
        ("network_mode: host", "compose.yaml:4:19: services.a.network_mode: network_mode \"host\" is not supported yet"),
        ("network_mode: service:db", "network_mode \"service:db\" is not supported yet"),
        ("network_mode: weird", "unknown network_mode \"weird\""),
        ("network_mode: none\n    networks: [default]", "compose.yaml:5:15: services.a.networks: networks cannot be given with network_mode"),
        ("network_mode: none\n    ports: [\"80\"]", "cannot publish ports"),
        ("tty: true", "compose.yaml:4:10: services.a.tty: tty = true is not supported"),
        ("stdin_open: yes", "expected true or false, found a string"),
    ];
    for (keys, want) in cases {
        let got = yaml(&format!("services:\n  a:\n    image: host\n    {keys}\n")).unwrap_err();
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn the_rendered_model_reads_back_as_the_same_model() {
    let file = r#"
name: shop
x-base: &base
  image: host
  environment: {LEVEL: "${FORGE_TEST_Y_R_LEVEL:-info}", PRICE: "5$$"}
networks:
  back: {subnet: 10.89.4.0/24}
secrets:
  token: {environment: FORGE_TEST_Y_R_TOKEN}
configs:
  motd: {content: "hello $$USER\n"}
services:
  db:
    <<: *base
    secrets: [token]
    configs: [{source: motd, target: /etc/motd}]
    logging: {driver: local, options: {max-size: 1m}}
    command: ["sh", "-c", "echo $$HOME: 'quoted' \"too\""]
    networks:
      back: {aliases: [database], ipv4_address: 10.89.4.9}
    healthcheck: {test: "true", interval: 2s, start_interval: 500ms}
    restart: "no"
    stop_signal: SIGINT
  web:
    <<: *base
    deploy: {replicas: 2, resources: {limits: {memory: 64m}}}
    depends_on: {db: {condition: service_healthy}}
    ports: ["80", "127.0.0.1::53/udp"]
    tmpfs: [/run]
    networks: [back, default]
    volumes: [/cache]
  off:
    image: host
    network_mode: none
    init: true
"#;
    std::env::set_var("FORGE_TEST_Y_R_TOKEN", "t0ken");
    let model = ok(file);
    let generated = &model.services["db"].generated;
    assert_eq!(generated.len(), 2);
    assert_eq!(generated[0].target, "/run/secrets/token");
    assert_eq!(generated[0].value.bytes(), b"t0ken");
    assert_eq!(generated[1].value.bytes(), b"hello $USER\n");
    let json = render::to_json(&model, "shop");
    let yaml_text = render::to_yaml(&json);
    let again = yaml(&yaml_text).unwrap_or_else(|e| panic!("{e}\n{yaml_text}"));
    assert_eq!(again.services, model.services, "\n{yaml_text}");
    assert_eq!(again.networks, model.networks);
    assert_eq!(again.name.as_deref(), Some("shop"));
    assert!(yaml_text.contains("PRICE: \"5$$\""), "{yaml_text}");
    assert!(
        !yaml_text.contains("t0ken"),
        "a secret's value is not printed: {yaml_text}"
    );
    assert!(yaml_text.contains("  web-2:\n"), "{yaml_text}");
    // And JSON is the same value.
    let from_json: serde_json::Value = serde_json::from_str(&format!("{json:#}")).unwrap();
    assert_eq!(from_json, json);
}

#[test]
fn scale_and_pull_from_the_command_line_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("compose.yaml");
    std::fs::write(&path, "services:\n  web:\n    image: host\n    deploy: {replicas: 3}\n  db:\n    image: host\n    pull_policy: never\n").unwrap();
    let opts = LoadOptions {
        scale: vec![("web".into(), 1), ("db".into(), 2)],
        pull: Some(PullPolicy::Always),
        ..LoadOptions::default()
    };
    let c = load_with(&path, &opts).unwrap();
    let names: Vec<&String> = c.services.keys().collect();
    assert_eq!(names, ["db-1", "db-2", "web"]);
    assert!(c
        .services
        .values()
        .all(|s| s.pull_policy == PullPolicy::Always));
    let opts = LoadOptions {
        scale: vec![("nope".into(), 2)],
        ..LoadOptions::default()
    };
    let e = load_with(&path, &opts).unwrap_err().to_string();
    assert!(
        e.ends_with("services: --scale: no enabled service \"nope\""),
        "{e}"
    );
    assert_eq!(parse_scale("web=3"), Ok(("web".to_string(), 3)));
    assert!(
        parse_scale("web").is_err()
            && parse_scale("web=1001").is_err()
            && parse_scale("web=0") == Ok(("web".into(), 0))
    );
}

#[test]
fn include_adds_another_files_services_with_its_own_paths_and_refuses_a_clash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db/pw.txt"), "s3cret\n").unwrap();
    std::fs::write(
        dir.path().join("db/compose.yaml"),
        "include: [more.toml]\nservices:\n  db:\n    image: host\n    volumes: [\"./data:/data\"]\n    secrets: [pw]\n    networks: [back]\nnetworks:\n  back: {}\nsecrets:\n  pw:\n    file: pw.txt\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("db/more.toml"),
        "[services.cache]\nimage = \"host\"\n",
    )
    .unwrap();
    let main = "include:\n  - db/compose.yaml\nservices:\n  web:\n    image: host\n    depends_on: [db, cache]\n";
    std::fs::write(dir.path().join("compose.yaml"), main).unwrap();
    let c = load(&dir.path().join("compose.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&String> = c.services.keys().collect();
    assert_eq!(names, ["cache", "db", "web"]);
    let d = dir.path().display().to_string();
    let db = &c.services["db"];
    let mounts: Vec<(&str, &str)> = db
        .volumes
        .iter()
        .map(|m| (m.source.as_str(), m.target.as_str()))
        .collect();
    let (data, pw) = (format!("{d}/db/data"), format!("{d}/db/pw.txt"));
    assert_eq!(
        mounts,
        [(data.as_str(), "/data"), (pw.as_str(), "/run/secrets/pw")]
    );
    assert_eq!(db.networks, ["back"]);
    assert!(c.networks.contains_key("back"));

    // A service both define is an error at the include, naming the other file.
    let clash = "include: [db/compose.yaml]\nservices:\n  db:\n    image: host\n";
    std::fs::write(dir.path().join("compose.yaml"), clash).unwrap();
    let e = load(&dir.path().join("compose.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "/compose.yaml:1:11: include[0]: services.db is defined both here and in the included"
        ),
        "{e}"
    );
    let e = yaml("include: [{path: x.yaml, env_file: .env}]\nservices: {}\n").unwrap_err();
    assert!(
        e.contains("include[0].env_file: env_file is not supported yet"),
        "{e}"
    );
    let e = yaml("include: [missing.yaml]\nservices: {}\n").unwrap_err();
    assert!(e.contains("missing.yaml"), "{e}");
}

#[test]
fn logging_takes_the_file_drivers_and_their_rotation_and_refuses_the_rest() {
    use crate::compose::logging::{LogDriver, Logging};
    let c = ok("services:\n  a:\n    image: host\n    logging: {driver: local}\n  b:\n    image: host\n    logging: {options: {max-size: 10k, max-file: \"3\"}}\n  c:\n    image: host\n");
    let local = Logging {
        driver: LogDriver::Local,
        max_size: Some(20 << 20),
        max_file: 5,
    };
    assert_eq!(c.services["a"].logging, local);
    let b = Logging {
        driver: LogDriver::JsonFile,
        max_size: Some(10 << 10),
        max_file: 3,
    };
    assert_eq!(c.services["b"].logging, b);
    assert_eq!(c.services["c"].logging, Logging::default());
    let cases = [
        ("logging: {driver: syslog}", "compose.yaml:4:23: services.a.logging.driver: logging driver \"syslog\" is not supported"),
        ("logging: {options: {compress: \"true\"}}", "services.a.logging.options.compress: option \"compress\" is not supported"),
        ("logging: {options: {max-file: \"0\"}}", "max-file is a number of files from 1 to 1000"),
        ("logging: {options: {max-size: lots}}", "services.a.logging.options.max-size"),
        ("logging: {driver: none, options: {max-size: 1m}}", "the none driver takes no options"),
    ];
    for (keys, want) in cases {
        let got = yaml(&format!("services:\n  a:\n    image: host\n    {keys}\n")).unwrap_err();
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
}

#[test]
fn up_of_some_services_keeps_them_their_dependencies_and_their_networks() {
    let text = "services:\n  web:\n    image: host\n    depends_on: [db]\n  db:\n    image: host\n    deploy: {replicas: 2}\n    depends_on: [conf]\n  conf:\n    image: host\n  cache:\n    image: host\n    networks: [back]\nnetworks:\n  back: {}\n";
    let only = |names: &[&str]| LoadOptions {
        only: names.iter().map(|n| n.to_string()).collect(),
        ..LoadOptions::default()
    };
    let c = load_in(&[("compose.yaml", text)], &only(&["web"])).unwrap();
    let names: Vec<&String> = c.services.keys().collect();
    assert_eq!(names, ["conf", "db-1", "db-2", "web"]);
    let networks: Vec<&String> = c.networks.keys().collect();
    assert_eq!(networks, ["default"]);
    let c = load_in(&[("compose.yaml", text)], &only(&["cache"])).unwrap();
    let networks: Vec<&String> = c.networks.keys().collect();
    assert_eq!(networks, ["back"]);
    let e = load_in(&[("compose.yaml", text)], &only(&["nope"])).unwrap_err();
    assert!(e.ends_with("no such service: nope"), "{e}");
}
