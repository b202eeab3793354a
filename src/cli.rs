//! Command-line definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `capdiag --version`: the version, the commit it was built from and the libpcap it was built
/// with (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAPDIAG_COMMIT"),
    ", libpcap ",
    env!("CAPDIAG_LIBPCAP"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "capdiag",
    version = VERSION,
    about = "Diagnose HTTP/1.x traffic (container registries, S3) in packet captures",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose captures: run every rule and report findings with their evidence frames
    Analyze(AnalyzeArgs),
    /// Diagnose live traffic on an interface, printing findings as they are made
    Watch(WatchArgs),
    /// List the HTTP/1.x exchanges in captures, with the frames Wireshark shows them at
    Http(HttpArgs),
    /// List the TCP connections of captures (Wireshark's stream numbers, Zeek's states), with
    /// what each carried: HTTP, or TLS and how its handshake went
    Conns(ConnsArgs),
    /// Write some frames of a capture (a range, a stream, a finding's evidence) to a new capture
    Extract(ExtractArgs),
    /// List the rules
    Rules,
    /// Print a rule's documentation
    Explain {
        /// Rule id (see `capdiag rules`)
        id: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or a command's (roff; `capdiag man analyze | man -l -`)
    Man {
        /// The command whose page to print (`capdiag-analyze(1)`); none: `capdiag(1)`
        command: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Info,
    Warning,
    Error,
    Never,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture files (.pcap or .pcapng, recognised by content); `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = AnalyzeFormat::Table)]
    pub format: AnalyzeFormat,

    #[command(flatten)]
    pub rule_args: RuleArgs,

    #[command(flatten)]
    pub diagram: DiagramArgs,

    /// Threads: 2 reads the capture, decodes it and parses its HTTP header blocks on a second
    /// thread while the first analyses it, 1 does it all on one (the results are the same)
    #[arg(short = 'j', long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AnalyzeFormat {
    /// Finding blocks and summaries for people
    Table,
    /// One JSON document (schema: docs/output-schema.md)
    Json,
    /// One self-contained HTML page: summary, findings with diagrams, timeline
    /// (docs/report.md)
    Html,
}

/// How the finding blocks for people are drawn (`analyze` and `watch`).
#[derive(Debug, Args)]
pub struct DiagramArgs {
    /// Draw with ASCII characters only (also when the locale is not UTF-8)
    #[arg(long)]
    pub ascii: bool,

    /// No ladder diagram of the evidence in the finding blocks
    #[arg(long)]
    pub no_diagram: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    /// Finding blocks for people
    Text,
    /// One JSON object per line: each finding, then a summary
    Ndjson,
}

/// Which rules run and which findings fail the run (`analyze` and `watch`).
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Exit with 1 when a finding of this severity or higher was made
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    pub fail_on: FailOn,

    /// Run only these rules (comma-separated ids, see `capdiag rules`)
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub rules: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Interface to capture on (`any` for all; see `-D`)
    #[arg(
        short = 'i',
        value_name = "IFACE",
        required_unless_present_any = ["list_interfaces", "read"],
        conflicts_with = "read"
    )]
    pub interface: Option<String>,

    /// Read frames from this capture file (`-`: standard input, e.g. `tcpdump -w - | capdiag
    /// watch -r -`) instead of an interface, printing findings as a live watch does; frame
    /// numbers are the file's
    #[arg(short = 'r', value_name = "FILE", conflicts_with_all = ["filter", "write", "list_interfaces"])]
    pub read: Option<PathBuf>,

    /// List the interfaces that can be captured on, and exit
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Capture filter (BPF, as for tcpdump); frame numbers count the frames it lets through
    #[arg(short = 'f', value_name = "FILTER")]
    pub filter: Option<String>,

    /// Write every captured frame to this pcap file: the frame numbers in findings are the ones
    /// Wireshark shows when it opens it
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = WatchFormat::Text)]
    pub format: WatchFormat,

    /// Stop after this many frames
    #[arg(short = 'c', value_name = "COUNT")]
    pub count: Option<u64>,

    /// Stop after this many seconds
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,

    /// Bytes captured per frame (0: 262144, as tcpdump's -s 0)
    #[arg(long, value_name = "N", default_value_t = 262_144,
          value_parser = clap::value_parser!(i32).range(0..=262_144))]
    pub snaplen: i32,

    /// Kernel capture buffer, MiB (large enough for bursts)
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(i32).range(1..=2047))]
    pub buffer_mib: i32,

    #[command(flatten)]
    pub rule_args: RuleArgs,

    #[command(flatten)]
    pub diagram: DiagramArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["frames", "stream", "finding"])))]
pub struct ExtractArgs {
    /// The capture to take frames from
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to write the new capture
    #[arg(short = 'w', value_name = "OUT")]
    pub out: PathBuf,

    /// Frames to keep, e.g. `4-8,20`
    #[arg(long, value_name = "LIST")]
    pub frames: Option<String>,

    /// Keep every frame of this TCP stream (Wireshark's `tcp.stream`)
    #[arg(long, value_name = "N")]
    pub stream: Option<u64>,

    /// Keep the evidence frames of this finding (numbered from 1 as `capdiag analyze` lists them)
    #[arg(long, value_name = "N")]
    pub finding: Option<usize>,

    /// Also write, in a pcapng Decryption Secrets Block, the TLS secrets of the connections
    /// the frames belong to (and those connections' frames up to the last one kept, which
    /// decrypting needs), so that Wireshark decrypts what was extracted and nothing else
    #[arg(long)]
    pub with_keys: bool,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people
    Table,
    /// One JSON document (schema: docs/output-schema.md)
    Json,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Capture files (.pcap or .pcapng, recognised by content); `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Include each message's body prefix (decoded from gzip/deflate) in JSON output
    #[arg(long)]
    pub show_body: bool,

    /// Threads: 2 reads the capture, decodes it and parses its HTTP header blocks on a second
    /// thread while the first analyses it, 1 does it all on one (the results are the same)
    #[arg(short = 'j', long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct ConnsArgs {
    /// Capture files (.pcap or .pcapng, recognised by content); `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Threads: 2 reads the capture, decodes it and parses its HTTP header blocks on a second
    /// thread while the first analyses it, 1 does it all on one (the results are the same)
    #[arg(short = 'j', long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// TLS secrets to decrypt with (`analyze`, `watch`, `http`, `conns`, `extract`).
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// An NSS key log (SSLKEYLOGFILE) to decrypt TLS with; may be given several times. Secrets
    /// a pcapng carries (Decryption Secrets Blocks) are used without it
    #[arg(long = "tls-keylog", value_name = "FILE")]
    pub tls_keylog: Vec<PathBuf>,
}

/// Resource limits; each has a safe default and is counted in the report when hit.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Body bytes kept per HTTP message (the rest is counted, not stored)
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// Largest HTTP header block
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,

    /// Most header lines in one HTTP message
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_headers: usize,

    /// Most TCP flows tracked with full state at once
    #[arg(long, value_name = "N", default_value_t = 131_072)]
    pub max_flows: usize,

    /// Out-of-order bytes buffered per direction of a connection (each segment counts 64
    /// bytes more)
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_buffered: usize,

    /// Out-of-order bytes buffered over all connections together (each segment counts 64
    /// bytes more)
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_buffered_total: usize,

    /// HTTP exchanges waiting for a response per connection
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_pending: usize,
}

impl LimitArgs {
    pub fn to_limits(&self) -> crate::engine::Limits {
        crate::engine::Limits {
            flow: crate::flow::Limits {
                max_flows: self.max_flows.max(1),
                max_buffered_per_direction: self.max_buffered,
                max_buffered_total: self.max_buffered_total,
                ..crate::flow::Limits::default()
            },
            app: crate::app::Limits {
                http: crate::http::Limits {
                    max_header_bytes: self.max_header_bytes,
                    max_headers: self.max_headers.max(1),
                    body_prefix: self.body_limit,
                    bodies: crate::http::BodyPolicy::ErrorResponses,
                },
                max_pending_exchanges: self.max_pending.max(1),
                tls: crate::tls::Limits::default(),
            },
        }
    }
}

/// A command line that parsed but does not make sense: what it names, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    pub what: String,
    pub why: String,
}

fn usage(what: &str, why: impl Into<String>) -> UsageError {
    UsageError {
        what: what.to_string(),
        why: why.into(),
    }
}

/// Standard input (`-`) can be read once: named twice, the second would read nothing.
fn stdin_once(files: &[PathBuf]) -> Result<(), UsageError> {
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        return Err(usage(
            "-",
            "standard input can be read only once; name it once",
        ));
    }
    Ok(())
}

fn rules_known(ids: &[String]) -> Result<(), UsageError> {
    crate::rules::instantiate(ids)
        .map(|_| ())
        .map_err(|e| usage("--rules", e))
}

impl Command {
    /// The second stage after clap's parsing: every check of the command line that clap cannot
    /// make, made once, before anything is opened or read (as ripgrep's flags are checked in
    /// two stages).
    pub fn check(&self) -> Result<(), UsageError> {
        match self {
            Command::Analyze(a) => {
                stdin_once(&a.files)?;
                rules_known(&a.rule_args.rules)
            }
            Command::Http(a) => stdin_once(&a.files),
            Command::Conns(a) => stdin_once(&a.files),
            Command::Watch(a) => rules_known(&a.rule_args.rules),
            Command::Extract(a) => {
                if a.file.as_os_str() == "-" && a.finding.is_some() {
                    return Err(usage(
                        "extract",
                        "--finding reads the capture twice, so it needs a file, not standard input",
                    ));
                }
                if let Some(list) = &a.frames {
                    crate::capture::write::parse_frame_list(list)
                        .map_err(|e| usage("--frames", e))?;
                }
                Ok(())
            }
            Command::Rules
            | Command::Explain { .. }
            | Command::Completions { .. }
            | Command::Man { .. } => Ok(()),
        }
    }
}
