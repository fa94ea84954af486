//! The `leakwatch` command: parses flags, sets up logging, loads the config and serves.
//! Everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;

use leakwatch::config::{Collector, Config, DEFAULT_LISTEN, DEFAULT_TARGET_URL};

/// Prometheus exporter that catches memory leaks in Go services before the OOM killer does.
///
/// leakwatch scrapes the net/http/pprof endpoints of Go services (heap profile with its
/// runtime.MemStats, goroutine profile), reads their container memory (cgroup v1/v2) and
/// /proc, and exports the Go heap, its growth and leak verdicts on /metrics.
///
/// With no --config and no --target it watches the pprof convention address
/// http://127.0.0.1:6060 (a Go service with `import _ "net/http/pprof"` listening there).
#[derive(Debug, Parser)]
#[command(name = "leakwatch", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

/// The exporter's flags: accepted before `serve` (or with no subcommand) and after it,
/// the later one winning (clap's global arguments).
#[derive(Debug, Clone, Default, clap::Args)]
struct ServeArgs {
    /// YAML config file with targets and settings (see README "Configuration"). Values:
    /// durations `500ms`, `15s`, `5m`, `1h30m` (a unit is required; dump schedules also
    /// take `off`); sizes `64MiB`, `512KiB`, `1GB` or a number of bytes; `heap_format`
    /// and `goroutine_format` `proto` or `text`; `gc` `auto`, `true` or `false`; target
    /// URLs `http(s)://host:port`; `listen` `IP:port`; regexes in Rust syntax. An error
    /// names the key, the line and what was expected; leakwatch exits at startup, and
    /// keeps the old config on a reload (SIGHUP, POST /-/reload).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Base URL of a Go service serving /debug/pprof/ (repeatable). Ignored with --config.
    /// [default without --config: http://127.0.0.1:6060]
    #[arg(long = "target", value_name = "URL", global = true)]
    targets: Vec<String>,

    /// Fleet mode: watch every Go process on this node that serves net/http/pprof on a
    /// listening port (in any network namespace, as root), named and labelled by its
    /// pod or unit; `discover:` in the config sets the rescan interval, the cap and
    /// allow/deny rules. Without --config or --target, no default target is added.
    #[arg(long, global = true)]
    discover: bool,

    /// Address for leakwatch's own HTTP server (/metrics, /, /-/healthy, /-/ready).
    /// [default: the config's `listen`, else 127.0.0.1:10760]
    #[arg(long = "web.listen-address", value_name = "ADDR", global = true)]
    listen: Option<String>,

    /// The URL under which leakwatch is reachable from outside (as Prometheus' flag),
    /// e.g. `http://10.0.0.7:10760`: written into every link and command the pages,
    /// the JSON and /runbook print, and exported as `leakwatch_web_info{external_url}`
    /// for the dashboards' links. `http`/`https`, a host and a port; no path prefix,
    /// query or fragment.
    /// [default: each request's Host; exported: the listen address unless it is a
    /// wildcard]
    #[arg(
        long = "web.external-url",
        value_name = "URL",
        value_parser = parse_external_url,
        global = true,
    )]
    external_url: Option<leakwatch::http::address::ExternalUrl>,

    /// exporter-toolkit web config file: TLS, client certificates, basic auth
    /// (see docs/web-config.md). Checked at startup.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    web_config: Option<PathBuf>,

    /// Allow `POST /-/reload` (off by default, as in Prometheus; SIGHUP always reloads).
    #[arg(long = "web.enable-lifecycle", global = true)]
    enable_lifecycle: bool,

    /// Allow the write APIs: `POST /api/v1/dump` and `POST /api/v1/targets/NAME/baseline`
    /// (off by default, as in Prometheus). Manual dumps stay under each target's
    /// cooldown and overhead budget.
    #[arg(long = "web.enable-admin-api", global = true)]
    enable_admin_api: bool,

    /// Most connections leakwatch's HTTP server keeps open at once (like Prometheus'
    /// flag). At the cap, the oldest idle connection makes way for a new one.
    /// [default: 512]
    #[arg(
        long = "web.max-connections",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        global = true,
    )]
    max_connections: Option<u64>,

    /// Log filter, e.g. `info`, `debug`, `leakwatch=debug` (also RUST_LOG).
    /// [default: info; `watch`: error]
    #[arg(long = "log.level", value_name = "FILTER", global = true)]
    log_level: Option<String>,

    /// Check the config file and exit: 1 with the error, or 0 printing `config OK` and
    /// any warnings (an `interval` under 1s, a dump period under the scrape interval).
    #[arg(long = "config.check", global = true)]
    check: bool,

    /// Watch only shard INDEX of COUNT (`--shard 0/3`): the targets whose name hashes
    /// to INDEX the way Prometheus' hashmod relabelling does, so replicas split a fleet.
    #[arg(long, value_name = "INDEX/COUNT", global = true)]
    shard: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the exporter (the default when no subcommand is given); its flags go before
    /// or after `serve`.
    Serve,
    /// Watch Go services for a while in the terminal (or CI), then summarize and exit
    /// 0 (no leak), 1 (leak suspected) or 2 (could not judge).
    Watch(leakwatch::watch::WatchArgs),
    /// Print the top functions of one heap profile, like `go tool pprof -top`.
    ///
    /// PROFILE is a gzipped protobuf dump (`/debug/pprof/heap`, leakwatch's dumps) or
    /// `heap?debug=1` text (scaled as pprof does). Text profiles carry function names,
    /// so no binary is needed.
    Top {
        /// The heap profile.
        profile: PathBuf,
        #[command(flatten)]
        opts: TopArgs,
    },
    /// Show what grew between two heap profiles, like `go tool pprof -top -base BASE NEW`.
    ///
    /// Example: `leakwatch diff heap-...-baseline.pb.gz heap-...-suspect.pb.gz --min-delta 5MB`
    Diff {
        /// The earlier profile (the baseline).
        base: PathBuf,
        /// The later profile.
        new: PathBuf,
        #[command(flatten)]
        opts: TopArgs,
    },
    /// Print the Prometheus alert and recording rules for this install.
    ///
    /// The output is `alerts/leakwatch-rules.yml` with your runbook and dashboard
    /// links, and the selector of leakwatch's own `up` series. Example:
    /// `leakwatch rules --runbook-url https://leakwatch.example.com/runbook > leakwatch-rules.yml`
    Rules(RulesArgs),
}

/// `--web.external-url`, validated by the one parser the pages use.
fn parse_external_url(s: &str) -> Result<leakwatch::http::address::ExternalUrl, String> {
    leakwatch::http::address::ExternalUrl::parse(s)
}

/// Options of `leakwatch rules`.
#[derive(Debug, clap::Args)]
struct RulesArgs {
    /// Runbook page every alert links to, with `#<alert name lower-cased>` appended.
    /// leakwatch serves its runbook at `/runbook`: use the address your users reach
    /// leakwatch at.
    #[arg(long, value_name = "URL", default_value = leakwatch::rules::DEFAULT_RUNBOOK_URL)]
    runbook_url: String,
    /// Grafana dashboard every alert links to (`dashboard_url` annotation); may use
    /// alert templates, e.g. `https://grafana.example.com/d/leakwatch-target?var-target={{ $labels.target }}`.
    /// [default: none]
    #[arg(long, value_name = "URL")]
    dashboard_url: Option<String>,
    /// PromQL label matchers selecting leakwatch's own `up` series, for the
    /// LeakwatchExporterDown and LeakwatchExporterAbsent alerts.
    #[arg(long, value_name = "MATCHERS", default_value = leakwatch::rules::DEFAULT_SELECTOR)]
    selector: String,
}

/// Options shared by `top` and `diff`.
#[derive(Debug, clap::Args)]
struct TopArgs {
    /// Which value to report: inuse_space, inuse_objects, alloc_space or alloc_objects.
    #[arg(long, default_value = "inuse_space")]
    sample: leakwatch::analysis::diff::SampleType,
    /// Show at most N functions (0 = all above pprof's 0.5% cutoff).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Sort by cumulative value instead of flat.
    #[arg(long)]
    cum: bool,
    /// Hide functions whose flat and cum changed by less than this (e.g. 5MB, 512KiB;
    /// for object samples, a count).
    #[arg(long, value_name = "SIZE")]
    min_delta: Option<String>,
    /// Leave out every sample whose stack has a function matching this regex (pprof's
    /// `-ignore`). Rows that are mostly the service serving profiles (leakwatch's own
    /// polls) are named in a note on stderr; `--ignore '^(net/http/pprof|runtime/pprof)\.'`
    /// leaves them out.
    #[arg(long, value_name = "REGEX")]
    ignore: Option<String>,
    /// Largest profile read, as a file or stream and again once decompressed, e.g.
    /// 512MiB: more is an error, never an unbounded buffer.
    #[arg(
        long = "max-input-bytes",
        alias = "max-bytes",
        value_name = "SIZE",
        default_value = "256MiB"
    )]
    max_input_bytes: leakwatch::units::ByteSize,
}

/// Parses the command line. The exporter's flags are clap globals, so they are taken
/// before or after `serve` (the later one wins); clap would list them under every
/// other subcommand too, so those get hidden copies (accepted there, unused).
fn parse_cli() -> (Cli, Vec<(Collector, bool)>) {
    let mut cmd = Cli::command().args(collector_args());
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    let others: Vec<String> = cmd
        .get_subcommands()
        .map(|sc| sc.get_name().to_string())
        .filter(|name| name != "serve")
        .collect();
    for name in others {
        cmd = cmd.mut_subcommand(name, |sc| sc.args(hidden.iter().cloned()));
    }
    let matches = cmd.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli, collector_flags(&matches))
}

/// `--collector.<name>` and `--no-collector.<name>` for every collector, with what it
/// holds and its default (the exporter convention of node_exporter).
fn collector_args() -> Vec<clap::Arg> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Collector::ALL
        .into_iter()
        .flat_map(|c| {
            let default = if c.default_on() { "on" } else { "off" };
            [
                clap::Arg::new(leak(format!("collector.{}", c.name())))
                    .long(leak(format!("collector.{}", c.name())))
                    .action(clap::ArgAction::SetTrue)
                    .global(true)
                    .help(leak(format!(
                        "Series of the {} collector: {} [default: {default}]",
                        c.name(),
                        c.help()
                    ))),
                clap::Arg::new(leak(format!("no-collector.{}", c.name())))
                    .long(leak(format!("no-collector.{}", c.name())))
                    .action(clap::ArgAction::SetTrue)
                    .global(true)
                    .help(leak(format!(
                        "Leave out the series of the {} collector (overrides the config's `metrics: collectors:`)",
                        c.name()
                    ))),
            ]
        })
        .collect()
}

/// The collector switches given, in command-line order (a later one wins).
fn collector_flags(matches: &clap::ArgMatches) -> Vec<(Collector, bool)> {
    let mut levels = vec![matches];
    if let Some((_, sub)) = matches.subcommand() {
        levels.push(sub);
    }
    let mut given: Vec<(usize, usize, Collector, bool)> = Vec::new();
    for (level, m) in levels.into_iter().enumerate() {
        for c in Collector::ALL {
            for (id, on) in [
                (format!("collector.{}", c.name()), true),
                (format!("no-collector.{}", c.name()), false),
            ] {
                if m.value_source(&id) == Some(clap::parser::ValueSource::CommandLine)
                    && let Some(at) = m.indices_of(&id).and_then(|mut i| i.next_back())
                {
                    given.push((level, at, c, on));
                }
            }
        }
    }
    given.sort_by_key(|(level, at, _, _)| (*level, *at));
    given.into_iter().map(|(_, _, c, on)| (c, on)).collect()
}

/// Buffers from this size up get their own mapping, given back to the kernel when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Fixes glibc's mmap threshold (and so its trim threshold) instead of letting it float.
///
/// By default glibc raises the threshold to the size of any mapped buffer it frees (up
/// to 32 MiB): after one big profile (a body and its tables, tens of MB, freed) every
/// later buffer under that size came from arenas it does not trim, and the exporter kept
/// 2-3x the body after the target was gone and peaked ~1.3x higher on the next big parse
/// (tests/it/input.rs). Musl and other libcs: nothing to set.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter: it takes no pointer, is
        // thread-safe, and returns 0 when it refuses (glibc then keeps its default).
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if ok == 0 {
            eprintln!("leakwatch: glibc refused M_MMAP_THRESHOLD={MMAP_THRESHOLD}");
        }
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error may quote a profile's or a target's bytes.
            let text = format!("{e:?}");
            eprintln!("Error: {}", leakwatch::printable::printable(&text));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tune_allocator();
    let (cli, collectors) = parse_cli();
    let flags = &cli.serve;
    // `watch` draws a live terminal view: only errors go to stderr unless asked.
    let level = match (&cli.command, flags.log_level.as_deref()) {
        (_, Some(l)) => l,
        (Some(Command::Watch(_)), None) => "error",
        (_, None) => "info",
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .context("invalid --log.level")?;
    tracing_subscriber::fmt()
        .fmt_fields(
            tracing_subscriber::fmt::format::debug_fn(leakwatch::printable::log_field)
                .delimited(" "),
        )
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match &cli.command {
        None | Some(Command::Serve) => serve(flags, collectors),
        Some(Command::Watch(args)) => std::process::exit(leakwatch::watch::run(args.clone())),
        Some(Command::Top { profile, opts }) => {
            let p = read_profile(profile, opts)?;
            let report = leakwatch::analysis::diff::top(&p, &opts.to_options()?);
            print!("{}", report.render());
            if let Some(note) = report.serving_note() {
                eprint!("{note}");
            }
            Ok(())
        }
        Some(Command::Rules(args)) => {
            let rules = leakwatch::rules::render(&leakwatch::rules::RuleOptions {
                runbook_url: args.runbook_url.clone(),
                dashboard_url: args.dashboard_url.clone(),
                selector: args.selector.clone(),
            })?;
            print!("{rules}");
            Ok(())
        }
        Some(Command::Diff { base, new, opts }) => {
            let b = read_profile(base, opts)?;
            let n = read_profile(new, opts)?;
            let report = leakwatch::analysis::diff::diff(&b, &n, &opts.to_options()?);
            print!("{}", report.render());
            if let Some(note) = report.serving_note() {
                eprint!("{note}");
            }
            Ok(())
        }
    }
}

impl TopArgs {
    fn to_options(&self) -> anyhow::Result<leakwatch::analysis::diff::TopOptions> {
        use leakwatch::analysis::diff::SampleType;
        let min_delta = match &self.min_delta {
            None => None,
            Some(s) => Some(match self.sample {
                SampleType::InuseSpace | SampleType::AllocSpace => {
                    let b = leakwatch::units::parse_size(s)
                        .map_err(|e| anyhow::anyhow!("--min-delta {s:?}: {e}"))?;
                    i64::try_from(b).unwrap_or(i64::MAX)
                }
                _ => s
                    .parse()
                    .with_context(|| format!("--min-delta {s:?}: a count for object samples"))?,
            }),
        };
        Ok(leakwatch::analysis::diff::TopOptions {
            sample: self.sample,
            top: self.top,
            cum: self.cum,
            min_delta,
            ignore: match &self.ignore {
                None => None,
                Some(re) => Some(leakwatch::analysis::diff::Ignore(
                    regex::Regex::new(re)
                        .with_context(|| format!("--ignore {re:?}: not a regex"))?,
                )),
            },
        })
    }
}

fn read_profile(
    path: &std::path::Path,
    opts: &TopArgs,
) -> anyhow::Result<leakwatch::pprof::HeapProfile> {
    let max = opts.max_input_bytes.as_u64();
    leakwatch::pprof::load::load_profile_file(path, max).with_context(|| {
        format!(
            "reading the heap profile {} (--max-input-bytes {})",
            path.display(),
            leakwatch::units::fmt_size(opts.max_input_bytes.as_u64())
        )
    })
}

fn load_config(cli: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match (&cli.config, cli.targets.is_empty()) {
        (Some(path), _) => Config::load(path)?,
        (None, false) => Config::from_urls(&cli.targets)?,
        (None, true) if cli.discover => Config::from_urls(&[])?,
        (None, true) => {
            tracing::info!(
                url = DEFAULT_TARGET_URL,
                "no --config or --target: watching the default pprof address"
            );
            Config::default_target()
        }
    };
    config.discover.enabled |= cli.discover;
    match &cli.shard {
        None => Ok(config),
        Some(s) => {
            let (i, n) = s
                .split_once('/')
                .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
                .with_context(|| format!("--shard {s:?}: expected INDEX/COUNT, e.g. 0/3"))?;
            let config = config.shard(i, n)?;
            tracing::info!(shard = %s, targets = config.targets.len(), "sharded");
            Ok(config)
        }
    }
}

fn serve(cli: &ServeArgs, collectors: Vec<(Collector, bool)>) -> anyhow::Result<()> {
    let config = load_config(cli)?;
    let web = match &cli.web_config {
        Some(path) => leakwatch::http::web::WebConfig::load(path)?,
        None => leakwatch::http::web::WebConfig::default(),
    };
    let web = web.with_limits(leakwatch::http::web::ServerLimits {
        max_connections: cli
            .max_connections
            .map_or(leakwatch::http::web::DEFAULT_MAX_CONNECTIONS, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        ..Default::default()
    });
    if cli.check {
        for w in &config.warnings {
            eprintln!("warning: config: {w}");
        }
        println!("config OK: {} target(s)", config.targets.len());
        return Ok(());
    }
    let listen = match (&cli.listen, config.listen) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => a.to_string(),
        (None, None) => DEFAULT_LISTEN.to_string(),
    };
    // Two workers for I/O and two blocking threads for parsing and analysis: every
    // thread gets its own malloc arena, and with 1000 targets more threads cost RSS
    // (measured: 9 threads, 227 MB; 5 threads, see docs/scale.md) without adding speed
    // on the 2-core machines leakwatch is sized for.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config_path = cli.config.clone();
    let write = leakwatch::WriteAccess {
        lifecycle: cli.enable_lifecycle,
        admin_api: cli.enable_admin_api,
    };
    leakwatch::http::server::raise_open_files_limit();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        leakwatch::run(
            config,
            leakwatch::RunOptions {
                config_path,
                web: Some(web),
                write,
                collectors,
                external_url: cli.external_url.clone(),
            },
            listener,
            shutdown_signal(),
        )
        .await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
