//! The administration subcommands of `control-server`: `mapping …`,
//! `sp list|show`, `gateway list|show`, `admin-token`. They work on the
//! database of a running server (it notices within about a second, see
//! `control_server::admin`). Tables for people by default, `--json` for
//! programs; every error says what to do next.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use control_server::admin::{self, Admin, AdminError, GatewayView, HistoryView, MappingInput, MappingView, SpView};
use control_server::config::{Config, PushPolicy};
use control_server::store::{MappingFilter, Store};
use serde::Serialize;

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Add a device, or move it to another SP / change its service type or access
    /// (an SP change writes history and tells the device's gateways).
    Add {
        /// EUI-48 or EUI-64, e.g. AC-DE-48-00-00-80.
        #[arg(long)]
        device_id: String,
        /// A registered SP identity (`control-server sp list`).
        #[arg(long)]
        sp: String,
        /// The service the device is for (e.g. metering), sent to the SP when it validates the device.
        #[arg(long)]
        service_type: Option<String>,
        /// wifi, zigbee, thread, ble, lorawan, ethernet or cellular.
        #[arg(long)]
        access: Option<String>,
        #[command(flatten)]
        push: PushArgs,
        #[command(flatten)]
        out: Output,
    },
    /// Import a CSV file: device_id,sp[,service_type[,access]] (header optional; `-` reads stdin).
    /// Every row is checked first: any bad row and nothing is imported.
    Import {
        /// The CSV file (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        push: PushArgs,
        #[command(flatten)]
        out: Output,
    },
    /// List devices, by device id.
    List {
        /// Only devices whose id contains this (hex digits, '-' or ':').
        #[arg(long)]
        search: Option<String>,
        /// Only devices of this SP.
        #[arg(long)]
        sp: Option<String>,
        /// Only devices this gateway asked about.
        #[arg(long)]
        gateway: Option<String>,
        /// Start after this device id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many rows (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Show one device.
    Show {
        /// The device, EUI-48 or EUI-64 (e.g. AC-DE-48-00-00-80).
        device_id: String,
        #[command(flatten)]
        out: Output,
    },
    /// One device's SP changes, oldest first.
    History {
        /// The device, EUI-48 or EUI-64 (e.g. AC-DE-48-00-00-80).
        device_id: String,
        #[command(flatten)]
        out: Output,
    },
    /// Remove a device from the mapping table (its history stays; gateways are not told).
    Remove {
        /// The device, EUI-48 or EUI-64 (e.g. AC-DE-48-00-00-80).
        device_id: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// The server's configuration file, for its [push] policy (who is told of a change);
    /// default: the default policy.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl PushArgs {
    fn rule(&self) -> anyhow::Result<control_server::store::PushRule> {
        Ok(match &self.config {
            Some(path) => Config::load(path).with_context(|| format!("loading {}", path.display()))?.push.rule(),
            None => PushPolicy::default().rule(),
        })
    }
}

/// `--json` prints the value; otherwise the table.
fn emit<T: Serialize>(out: &Output, value: &T, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(value).context("encoding JSON")?);
    } else {
        print!("{}", table());
    }
    Ok(())
}

/// A plain text table: a header row, a rule, left-aligned columns.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect()));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn mapping_rows(rows: &[MappingView]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|m| {
            vec![
                m.device_id.clone(),
                m.sp.clone(),
                or_dash(&m.service_type),
                or_dash(&m.access),
                if m.gateways.is_empty() { "-".into() } else { m.gateways.join(",") },
                m.updated_at.clone(),
            ]
        })
        .collect()
}

const MAPPING_HEADERS: [&str; 6] = ["DEVICE", "SP", "SERVICE TYPE", "ACCESS", "GATEWAYS", "UPDATED"];

fn history_table(rows: &[HistoryView]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|h| vec![h.at.clone(), or_dash(&h.old_sp), h.new_sp.clone(), h.changed_by.clone(), or_dash(&h.message_id)])
        .collect();
    table(&["WHEN", "FROM", "TO", "BY", "MESSAGE"], &rows)
}

/// An admin error as the CLI says it (already says what to do next).
fn fail(e: AdminError) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}

pub async fn mapping(store: Store, command: MappingCommand) -> anyhow::Result<()> {
    let read_only = |store: &Store| Admin::new(store.clone(), PushPolicy::default().rule(), "cli");
    match command {
        MappingCommand::Add { device_id, sp, service_type, access, push, out } => {
            let admin = Admin::new(store, push.rule()?, "cli");
            let done = admin.add(&MappingInput { device_id, sp, service_type, access }).await.map_err(fail)?;
            emit(&out, &done, || {
                let told = match done.events {
                    0 => String::new(),
                    n => format!(" ({n} gateway event(s) written)"),
                };
                match (done.outcome, &done.previous_sp) {
                    ("moved", Some(prev)) => format!("{} moved from {prev} to {}{told}\n", done.device_id, done.sp),
                    ("created", _) => format!("{} added with {}{told}\n", done.device_id, done.sp),
                    ("updated", _) => format!("{} updated (still with {}){told}\n", done.device_id, done.sp),
                    _ => format!("{} unchanged (already with {})\n", done.device_id, done.sp),
                }
            })
        }
        MappingCommand::Import { file, push, out } => {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).context("reading the CSV from stdin")?;
            } else {
                text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {} (a CSV: device_id,sp[,service_type[,access]])", file.display()))?;
            }
            let admin = Admin::new(store, push.rule()?, "cli");
            let done = admin.import_csv(&text).await.map_err(fail)?;
            emit(&out, &done, || {
                format!(
                    "imported {} row(s): {} created, {} changed, {} unchanged, {} access set; {} gateway event(s); {} transaction(s)\n",
                    done.rows, done.created, done.changed, done.unchanged, done.access_set, done.events, done.transactions
                )
            })
        }
        MappingCommand::List { search, sp, gateway, after, limit, out } => {
            if !(1..=admin::MAX_PAGE).contains(&limit) {
                bail!("--limit {limit}: 1 to {} rows per page (page on with --after)", admin::MAX_PAGE);
            }
            let filter = MappingFilter {
                device_contains: admin::device_search(search.as_deref().unwrap_or("")).map_err(fail)?,
                sp,
                gateway,
                after,
                limit,
            };
            let page = read_only(&store).list(filter).await.map_err(fail)?;
            emit(&out, &page, || {
                let mut text = table(&MAPPING_HEADERS, &mapping_rows(&page.mappings));
                text.push_str(&format!("{} of {} device(s)", page.mappings.len(), page.total));
                match &page.next {
                    Some(next) => text.push_str(&format!("; next page: --after {next}\n")),
                    None => text.push('\n'),
                }
                text
            })
        }
        MappingCommand::Show { device_id, out } => {
            let admin = read_only(&store);
            let m = admin.show(&device_id).await.map_err(fail)?;
            emit(&out, &m, || {
                format!(
                    "device        {}\nsp            {}\nservice type  {}\naccess        {}\ngateways      {}\ncreated       {}\nupdated       {}\nvalidated     {}\n",
                    m.device_id,
                    m.sp,
                    or_dash(&m.service_type),
                    or_dash(&m.access),
                    if m.gateways.is_empty() { "-".into() } else { m.gateways.join(", ") },
                    m.created_at,
                    m.updated_at,
                    m.validated_at
                )
            })
        }
        MappingCommand::History { device_id, out } => {
            let history = read_only(&store).history(&device_id).await.map_err(fail)?;
            emit(&out, &history, || history_table(&history))
        }
        MappingCommand::Remove { device_id, out } => {
            let done = read_only(&store).remove(&device_id).await.map_err(fail)?;
            emit(&out, &done, || format!("{} removed (it was with {}); its history stays\n", done.device_id, done.sp))
        }
    }
}

fn sp_rows(sps: &[SpView]) -> Vec<Vec<String>> {
    sps.iter()
        .map(|s| {
            vec![
                s.identity.clone(),
                s.base_url.clone(),
                s.endpoint.clone().unwrap_or_else(|| "-".into()),
                s.devices.to_string(),
                if s.may_release { s.may_move_to.join(",") } else { "-".into() },
                if s.may_claim { "yes".into() } else { "no".into() },
            ]
        })
        .collect()
}

const SP_HEADERS: [&str; 6] = ["SP", "BASE URL", "ENDPOINT", "DEVICES", "MAY RELEASE TO", "MAY CLAIM"];

pub async fn sp_list(store: Store, out: &Output) -> anyhow::Result<()> {
    let sps = Admin::new(store, PushPolicy::default().rule(), "cli").sps().await.map_err(fail)?;
    emit(out, &sps, || {
        if sps.is_empty() {
            "no SP is registered (`control-server sp add --identity … --base-url … --public-key … --endpoint …`)\n".into()
        } else {
            table(&SP_HEADERS, &sp_rows(&sps))
        }
    })
}

pub async fn sp_show(store: Store, identity: &str, out: &Output) -> anyhow::Result<()> {
    let sp = Admin::new(store, PushPolicy::default().rule(), "cli").sp(identity).await.map_err(fail)?;
    emit(out, &sp, || {
        format!(
            "sp            {}\nbase url      {}\npublic key    {}\nendpoint      {}\ndevice key    {}\ndevices       {}\nmay release   {}\nmay move to   {}\nmay claim     {}\n",
            sp.identity,
            sp.base_url,
            sp.public_key,
            sp.endpoint.as_deref().unwrap_or("- (none: sp add --endpoint URL)"),
            sp.device_public_key,
            sp.devices,
            sp.may_release,
            if sp.may_move_to.is_empty() { "-".into() } else { sp.may_move_to.join(", ") },
            sp.may_claim
        )
    })
}

fn gateway_rows(gateways: &[GatewayView]) -> Vec<Vec<String>> {
    gateways
        .iter()
        .map(|g| {
            vec![
                g.id.clone(),
                if g.revoked { "revoked".into() } else { "active".into() },
                g.devices.to_string(),
                g.last_seq.to_string(),
                g.acked_seq.to_string(),
                g.lag.to_string(),
                g.geo.map(|geo| format!("{},{}", geo.lat, geo.lon)).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

const GATEWAY_HEADERS: [&str; 7] = ["GATEWAY", "STATE", "DEVICES", "LAST SEQ", "ACKED", "LAG", "GEO"];

pub async fn gateway_list(store: Store, out: &Output) -> anyhow::Result<()> {
    let gateways = Admin::new(store, PushPolicy::default().rule(), "cli").gateways().await.map_err(fail)?;
    emit(out, &gateways, || {
        if gateways.is_empty() {
            "no gateway is registered (`control-server gateway add --id … --credential …`)\n".into()
        } else {
            table(&GATEWAY_HEADERS, &gateway_rows(&gateways))
                + "(whether a gateway is connected: the console or GET /v1/admin/gateways of a running server)\n"
        }
    })
}

pub async fn gateway_show(store: Store, id: &str, out: &Output) -> anyhow::Result<()> {
    let g = Admin::new(store, PushPolicy::default().rule(), "cli").gateway(id).await.map_err(fail)?;
    emit(out, &g, || table(&GATEWAY_HEADERS, &gateway_rows(std::slice::from_ref(&g))))
}

/// `admin-token`: sets (prints once) or removes the admin credential.
pub async fn admin_token(store: Store, from_stdin: bool, remove: bool) -> anyhow::Result<()> {
    if remove {
        if admin::auth::remove_token(&store).await? {
            println!("admin token removed: the admin API and console are off (a running server notices within policy.auth_cache_ttl_ms)");
        } else {
            println!("no admin token was set: the admin API and console were already off");
        }
        return Ok(());
    }
    let token = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the token from stdin")?;
        let token = text.trim().to_owned();
        if token.len() < 32 {
            bail!("the token from stdin is {} characters; use at least 32 random ones (or omit --stdin to have one made)", token.len());
        }
        token
    } else {
        admin::auth::generate_token()
    };
    admin::auth::set_token(&store, &token).await?;
    if from_stdin {
        eprintln!("admin token set (only its salted hash is stored)");
    } else {
        println!("{token}");
        eprintln!(
            "admin token set; it is printed above once, only its salted hash is stored. Use it as \
             `Authorization: Bearer <token>` on /v1/admin/… or to log in at /console"
        );
    }
    Ok(())
}
