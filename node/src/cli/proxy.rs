//! `skrei proxy`: the egress proxy on its own (R-CLI-1, issue 3), for
//! operators and tests: put it in front of curl with
//! `curl -x http://127.0.0.1:3128 https://api.example.com/`.
//!
//! The crate is named with a leading `::` throughout: this module is itself
//! called `proxy`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use protocol::domain::{DomainSet, Host};
use protocol::policy::Allowlist;

/// Run the egress proxy for one job (or for a test) in the foreground.
#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3128")]
    pub listen: SocketAddr,

    /// A domain the proxy lets through (`example.com`, or `.example.com` for
    /// it and all its subdomains). Repeatable.
    #[arg(long = "allow", value_name = "DOMAIN")]
    pub allow: Vec<String>,

    /// A file of domains, one per line, `#` comments (same syntax as `--allow`).
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,

    /// Rate limit in each direction, in bytes per second (`1250000`) or
    /// with a bit-rate unit (`10mbit`, `500kbit`, `1gbit`); `0` is unlimited.
    #[arg(long, value_name = "BYTES_PER_S", default_value = "10mbit", value_parser = parse_rate)]
    pub rate: u64,

    /// An address range to allow despite being private, loopback or
    /// otherwise special-purpose (`10.1.0.0/16`). Repeatable.
    #[arg(long = "allow-range", value_name = "CIDR")]
    pub allow_range: Vec<::proxy::Cidr>,

    /// A destination no request may reach, whatever its name
    /// (`10.0.0.5:4001`, `[fd00::5]:4001`). Repeatable.
    #[arg(long = "deny", value_name = "ADDR:PORT")]
    pub deny: Vec<SocketAddr>,

    /// An address of the node this proxy guards, refused like this host's
    /// own addresses unless `--allow-range` covers it (R-SEC-3). A node
    /// gives its host's addresses to a proxy in a container, whose own
    /// interfaces are the container's. Repeatable.
    #[arg(long = "own-address", value_name = "IP")]
    pub own_address: Vec<IpAddr>,

    /// Ports `CONNECT` may reach, comma-separated.
    #[arg(
        long = "connect-ports",
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "443"
    )]
    pub connect_ports: Vec<u16>,

    /// Ports plain HTTP may reach, comma-separated (R-NET-3: a job allowed a
    /// host must not POST to its database port).
    #[arg(
        long = "http-ports",
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "80"
    )]
    pub http_ports: Vec<u16>,

    /// Append audit records (JSON lines) to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// Answer for a name without asking DNS (`api.example.com=203.0.113.7`);
    /// the address is still checked like any other. Repeatable.
    #[arg(long = "resolve", value_name = "HOST=IP", value_parser = parse_resolve)]
    pub resolve: Vec<(String, IpAddr)>,

    /// The job id written to audit records and sent upstream as `X-Skrei-Job`.
    #[arg(long = "job-id", value_name = "ID", default_value = "standalone")]
    pub job_id: String,
    /// Most connections and tunnels open at once for this proxy's job;
    /// more get `503`.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections: usize,
}

/// `1250000`, `10mbit`, `500kbit`, `1gbit`, `8bit` -> bytes per second.
fn parse_rate(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (number, bits_per_unit) = if let Some(n) = lower.strip_suffix("gbit") {
        (n, 1_000_000_000u64)
    } else if let Some(n) = lower.strip_suffix("mbit") {
        (n, 1_000_000)
    } else if let Some(n) = lower.strip_suffix("kbit") {
        (n, 1_000)
    } else if let Some(n) = lower.strip_suffix("bit") {
        (n, 1)
    } else {
        return lower.parse::<u64>().map_err(|_| {
            format!("`{s}` is not a rate: write bytes per second (`1250000`) or bits with a unit (`10mbit`)")
        });
    };
    let bad = || format!("`{s}` is not a rate: write e.g. `10mbit`, `500kbit` or `1250000`");
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    let bytes = (value * bits_per_unit as f64 / 8.0).round();
    if bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `HOST=IP` with the host normalised like a request's host.
fn parse_resolve(s: &str) -> Result<(String, IpAddr), String> {
    let (host, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write `HOST=IP`, e.g. `api.example.com=203.0.113.7`"))?;
    let name = match Host::parse(host).map_err(|e| e.to_string())? {
        Host::Name(n) => n,
        Host::Ip(_) => return Err(format!("`{host}` is already an address")),
    };
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    Ok((name, ip))
}

fn domains(args: &ProxyArgs) -> anyhow::Result<DomainSet> {
    let allowed = DomainSet::parse(&args.allow).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("--allow {}: {}", e.input, e.error))
            .collect();
        anyhow::anyhow!(lines.join("\n"))
    })?;
    let from_file = match &args.allowlist {
        None => DomainSet::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read allowlist {}", path.display()))?;
            Allowlist::parse(&text, &path.display().to_string())?
                .domains()
                .clone()
        }
    };
    Ok(DomainSet::from_domains(
        allowed.iter().chain(from_file.iter()).cloned(),
    ))
}

/// Run `skrei proxy` until Ctrl-C.
pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let domains = match domains(&args) {
        Ok(d) if d.is_empty() => {
            eprintln!(
                "error: no domains: give --allow DOMAIN or --allowlist FILE (the proxy would refuse everything)"
            );
            return Ok(ExitCode::from(super::EXIT_INVALID));
        }
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(super::EXIT_INVALID));
        }
    };
    for (flag, ports) in [
        ("--connect-ports", &args.connect_ports),
        ("--http-ports", &args.http_ports),
    ] {
        if ports.contains(&0) {
            eprintln!("error: {flag}: 0 is not a port; list ports from 1 to 65535");
            return Ok(ExitCode::from(super::EXIT_INVALID));
        }
    }

    let mut config = ::proxy::ProxyConfig::new(args.job_id.clone(), domains);
    config.rate_up = args.rate;
    config.rate_down = args.rate;
    config.connect_ports = args.connect_ports.clone();
    config.http_ports = args.http_ports.clone();
    config.limits.max_connections = args.max_connections;
    config.allowed_ranges = args.allow_range.clone();
    for addr in &args.deny {
        config.deny.insert_socket(*addr);
    }
    // R-SEC-3: this host's addresses (re-read as they change) and those
    // the node names.
    config.own_addresses =
        ::proxy::OwnAddresses::system().with_extra(args.own_address.iter().copied());

    let mut answers: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (name, ip) in &args.resolve {
        answers.entry(name.clone()).or_default().push(*ip);
    }
    let mut resolver = ::proxy::StaticResolver::new();
    for (name, ips) in answers {
        for ip in ips {
            resolver.insert(name.clone(), ip);
        }
    }
    let resolver = resolver.with_fallback(Arc::new(::proxy::SystemResolver));

    let audit: Arc<dyn ::proxy::AuditSink> = match &args.audit {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open audit file {}", path.display()))?;
            Arc::new(::proxy::WriterSink::new(file))
        }
        None => Arc::new(::proxy::WriterSink::new(std::io::stderr())),
    };

    let proxy = ::proxy::Proxy::builder(config)
        .resolver(Arc::new(resolver))
        .audit(audit)
        .build()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        eprintln!("skrei proxy: listening on {local} (http_proxy=http://{local})");
        // Ctrl-C, or SIGTERM from a container runtime or service manager.
        let terminate = async {
            #[cfg(unix)]
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
                return;
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = proxy.clone().serve(listener) => {}
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            () = terminate => {}
        }
        proxy.shutdown();
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10mbit"), Ok(1_250_000));
        assert_eq!(parse_rate("10Mbit"), Ok(1_250_000));
        assert_eq!(parse_rate("1250000"), Ok(1_250_000));
        assert_eq!(parse_rate("500kbit"), Ok(62_500));
        assert_eq!(parse_rate("1gbit"), Ok(125_000_000));
        assert_eq!(parse_rate("1.5mbit"), Ok(187_500));
        assert_eq!(parse_rate("0"), Ok(0));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1mbit").is_err());
        assert!(parse_rate("10mb").is_err());
    }

    #[test]
    fn resolve_flags() {
        assert_eq!(
            parse_resolve("API.Example.com.=203.0.113.7"),
            Ok(("api.example.com".to_owned(), "203.0.113.7".parse().unwrap()))
        );
        assert_eq!(
            parse_resolve("a.test=[::1]"),
            Ok(("a.test".to_owned(), "::1".parse().unwrap()))
        );
        assert!(parse_resolve("a.test").is_err());
        assert!(parse_resolve("1.2.3.4=1.2.3.4").is_err());
        assert!(parse_resolve("a.test=nope").is_err());
    }
}
