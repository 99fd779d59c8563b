//! `qr-packer`: the manufacturer's tool for enrollment labels, and a checker
//! for them. See `qr-packer --help` and `qr-packer/FORMAT.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sha2::Digest;
use clap::{Args, Parser, Subcommand};
use qr_packer::batch::{self, Images};
use qr_packer::report::{SizeReport, naive_size};
use qr_packer::{
    Dictionary, Ec, Halves, Label, Manifest, ManufacturerKey, PayloadError, PreparedApp, SignedPayload, TrustedKeys,
    dictionary, nfc, read_label_image,
};

#[derive(Parser)]
#[command(name = "qr-packer", version, about = "Signed, compressed, base45 QR enrollment payloads that fit one printable code")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod compile;
mod new;
#[cfg(feature = "pcsc")]
mod read_tag;
mod simulate;
mod stdout;

use stdout::{say, say_raw};

#[derive(Subcommand)]
enum Command {
    /// Write a new two-half enrollment app from the template (with the guest SDK and the WIT).
    New(NewArgs),
    /// Build an app's halves for wasm32, componentize and check them, and print the label's size.
    Build(BuildArgs),
    /// Run both halves of an app (or a label) against the fake assistant and device of simulate.toml.
    Simulate(SimulateArgs),
    /// Generate a manufacturer signing key pair (a signing key file and a public key file).
    Keygen(KeygenArgs),
    /// Pack one device's payload: text, the printable label (PNG, SVG, PDF), with --ndef the NFC tag's, and a size report.
    Pack(PackArgs),
    /// Pack one payload and label per device of a CSV, in parallel.
    Batch(BatchArgs),
    /// Decode a payload (text, label image or NFC tag image) and show manifest, signer and sizes.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// Check a payload against trusted manufacturer keys (exit 0 only if it verifies).
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Render payload text as a PNG, SVG or terminal QR code.
    Render(RenderArgs),
    /// Train a manufacturer dictionary from a family's component pairs (or retrain the shipped one, --reference).
    TrainDict(TrainDictArgs),
    /// Read the label on an NFC tag held to a PC/SC reader and write the tag's image (feature `pcsc`).
    #[cfg(feature = "pcsc")]
    ReadTag(ReadTagArgs),
}

#[cfg(feature = "pcsc")]
#[derive(Args)]
struct ReadTagArgs {
    /// Use the first reader whose name contains this (default: the first reader).
    #[arg(long)]
    reader: Option<String>,
    /// Where to write the tag's image (then: qr-packer verify FILE --trusted KEY).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct NewArgs {
    /// The folder to create (must not exist, or be empty).
    dir: PathBuf,
    /// The device's access technology: wifi, zigbee, thread, ble, lorawan, ethernet, cellular.
    #[arg(long)]
    access: sp_bound_id::AccessTechnology,
    /// The app's name (package names NAME-phone, NAME-device); default: the folder's name.
    #[arg(long)]
    name: Option<String>,
    /// The device id simulate.toml uses (default: an example EUI of the right length).
    #[arg(long)]
    device_id: Option<String>,
    /// Also write an operational app (operational/, world operational), which `build` then builds and the label can carry (`pack --operational`).
    #[arg(long)]
    operational: bool,
}

#[derive(Args)]
struct BuildArgs {
    /// The app's folder (as `qr-packer new` writes it).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Error-correction level the size report assumes: L, M, Q or H.
    #[arg(long, default_value = "M")]
    ec: Ec,
}

#[derive(Args)]
struct SimulateArgs {
    /// An app's folder (built first), or a label (payload text file or PNG/JPEG photo).
    target: PathBuf,
    /// The scenario (default: simulate.toml in the app's folder, or beside the label).
    #[arg(long)]
    config: Option<PathBuf>,
    /// For a label: the public key file of the manufacturer that signed it.
    #[arg(long)]
    trusted: Option<PathBuf>,
    /// Enroll the real device at this address (a `device-agent serve`) instead
    /// of a simulated one; the scenario's fake assistant plays the phone.
    #[arg(long)]
    device: Option<String>,
}

#[derive(Args)]
struct KeygenArgs {
    /// The key id readers will know the key by (A-Z a-z 0-9 . _ -, at most 32 bytes; short: it is printed on every label).
    #[arg(long)]
    kid: String,
    /// Where to write the signing key (mode 0600).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the public key for readers (default: OUT.pub.json).
    #[arg(long)]
    public: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct HalvesArgs {
    /// A built-in reference app (wifi-meter, zigbee-sensor, ethernet-controller, ble-lock) instead of --phone/--device.
    #[arg(long, conflicts_with_all = ["phone", "device"])]
    app: Option<String>,
    /// The phone half (a component of world phone-half).
    #[arg(long, requires = "device")]
    phone: Option<PathBuf>,
    /// The device half (a component of world device-half).
    #[arg(long, requires = "phone")]
    device: Option<PathBuf>,
    /// An operational application, a component of world operational, for the device to run after enrollment.
    #[arg(long)]
    operational: Option<PathBuf>,
    /// With --app: also pack that reference app's built-in operational app (wifi-meter and zigbee-sensor have one).
    #[arg(long, requires = "app", conflicts_with = "operational")]
    with_operational: bool,
    /// A manufacturer dictionary file to compress with (from `train-dict --samples`); needs --dictionary-id 128..255, and readers need it listed in the signing key's public key file.
    #[arg(long, requires = "dictionary_id")]
    dictionary: Option<PathBuf>,
    /// The dictionary's id: with --dictionary, the manufacturer's own (128 to 255); without, a shipped one (0: none; default: the current shipped one).
    #[arg(long)]
    dictionary_id: Option<u32>,
}

#[derive(Args)]
struct ManifestArgs {
    /// A manifest file, TOML or JSON (by extension); flags override its fields.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The app's id, signed into the label (e.g. smart-plug).
    #[arg(long)]
    app_id: Option<String>,
    /// The app's version (e.g. 1.0.0).
    #[arg(long)]
    app_version: Option<String>,
    /// The manufacturer's name, as printed.
    #[arg(long)]
    manufacturer: Option<String>,
    /// The product's name, printed under the code.
    #[arg(long)]
    product: Option<String>,
    /// The device's access technology: wifi, zigbee, thread, ble, lorawan, ethernet, cellular.
    #[arg(long)]
    access: Option<String>,
    /// A capability the halves use (repeatable), e.g. device.configure-network.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Per-device parameter NAME=VALUE (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

#[derive(Args)]
struct LabelArgs {
    /// Error-correction level: L, M, Q or H.
    #[arg(long, default_value = "M")]
    ec: Ec,
}

#[derive(Args)]
struct PrintArgs {
    /// Width of the printed code with its quiet zone, in millimetres (default: the smallest whole size at which a phone reads it at arm's length, 0.4 mm a module).
    #[arg(long)]
    size_mm: Option<f64>,
    /// Printer resolution of the PNG label, in dots per inch.
    #[arg(long, default_value_t = 300)]
    dpi: u32,
}

impl PrintArgs {
    fn spec(&self) -> qr_packer::print::PrintSpec {
        qr_packer::print::PrintSpec { size_mm: self.size_mm, dpi: self.dpi }
    }
}

#[derive(Args)]
struct FitArgs {
    /// The largest QR version a label may need at the chosen --ec; a larger one is refused (naming the part to shrink) unless --force.
    #[arg(long, default_value_t = qr_packer::report::DEFAULT_MAX_VERSION, value_parser = clap::value_parser!(i16).range(1..=40))]
    max_version: i16,
    /// Print a label above --max-version anyway.
    #[arg(long)]
    force: bool,
}

impl FitArgs {
    fn max_version(&self) -> Option<i16> {
        (!self.force).then_some(self.max_version)
    }
}

#[derive(Args)]
struct PackArgs {
    #[command(flatten)]
    halves: HalvesArgs,
    #[command(flatten)]
    manifest: ManifestArgs,
    /// The device id, canonical EUI text (AC-DE-48-00-00-80).
    #[arg(long, conflicts_with = "unbound")]
    device_id: Option<String>,
    /// Pack a label for no one device: any fresh device of its access technology that trusts the key accepts it.
    #[arg(long)]
    unbound: bool,
    /// A one-time secret for this device, hex.
    #[arg(long)]
    secret: Option<String>,
    /// The manufacturer signing key file.
    #[arg(long)]
    key: PathBuf,
    /// Directory for NAME.txt, NAME.png, NAME.svg, NAME.pdf (and NAME.ndef with --ndef).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Base name of the output files (default: the device id, or the app id).
    #[arg(long)]
    name: Option<String>,
    /// Also write the label for an NFC tag: NAME.ndef, an NDEF message with the signed payload as bytes (no base45), and say which common tags it fits.
    #[arg(long)]
    ndef: bool,
    #[command(flatten)]
    label: LabelArgs,
    #[command(flatten)]
    print: PrintArgs,
    #[command(flatten)]
    fit: FitArgs,
    /// Print the size report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BatchArgs {
    #[command(flatten)]
    halves: HalvesArgs,
    #[command(flatten)]
    manifest: ManifestArgs,
    /// CSV with a header: device_id[,one_time_secret][,other columns become parameters].
    #[arg(long)]
    csv: PathBuf,
    /// The manufacturer signing key file (`qr-packer keygen --out`).
    #[arg(long)]
    key: PathBuf,
    /// Directory for DEVICE.txt / .png (/ .svg), index.csv and labels.pdf.
    #[arg(long)]
    out_dir: PathBuf,
    /// Payload text only, no PNG/SVG labels.
    #[arg(long)]
    no_images: bool,
    /// Also write an SVG per device.
    #[arg(long)]
    svg: bool,
    /// Also lay out every label on A4 sheets: OUT_DIR/labels.pdf.
    #[arg(long)]
    pdf: bool,
    #[command(flatten)]
    label: LabelArgs,
    #[command(flatten)]
    print: PrintArgs,
    #[command(flatten)]
    fit: FitArgs,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Args)]
struct TrustArgs {
    /// A trusted manufacturer public key file, with the dictionaries it lists (repeatable).
    #[arg(long = "trusted")]
    trusted: Vec<PathBuf>,
    /// A directory of trusted public key files (*.json), with the dictionaries they list.
    #[arg(long)]
    trusted_dir: Option<PathBuf>,
}

#[derive(Args)]
struct InspectArgs {
    /// A payload text file, a label image (PNG/JPEG), or the text itself (EN1:...).
    input: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// A payload text file, a label image (PNG/JPEG), or the text itself (EN1:...).
    input: String,
    #[command(flatten)]
    trust: TrustArgs,
}
// Exit status of `verify`: 0 verified; 2 usage, I/O or keys; 3 image
// unreadable; 10 + the failed stage (10 prefix, 11 base45, 12 cose, 13 alg,
// 14 kid, 15 signature, 16 version, 17 dictionary, 18 decompress, 19 bundle).

#[derive(Args)]
struct RenderArgs {
    /// A payload text file or the text itself.
    input: String,
    /// Write the code as a PNG to this file.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Write the code as an SVG to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the code to the terminal.
    #[arg(long)]
    terminal: bool,
    /// Pixels per QR module in the PNG (a bare code; `pack` writes labels for printing).
    #[arg(long, default_value_t = 4)]
    scale: u32,
    #[command(flatten)]
    label: LabelArgs,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["samples", "reference", "shipped"])))]
struct TrainDictArgs {
    /// A directory of a family's component pairs, NAME-phone.wasm + NAME-device.wasm (other files are skipped).
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Train a dictionary from the reference guest apps instead (for leave-one-out measurements).
    #[arg(long, conflicts_with = "shipped")]
    reference: bool,
    /// Retrain the shipped dictionary from the dictionary seeds (no app's code).
    #[arg(long)]
    shipped: bool,
    /// Where to write the dictionary [with --shipped, default: the current shipped dictionary's file, qr-packer/dictionaries/enroll-v3.zdict].
    #[arg(long, required_unless_present_any = ["reference", "shipped"])]
    out: Option<PathBuf>,
    /// The id labels will name the dictionary by: 128 to 255, the signer's own.
    #[arg(long, default_value_t = 128, conflicts_with_all = ["reference", "shipped"])]
    id: u32,
    /// With --reference: leave this reference app out of the training set.
    #[arg(long, requires = "reference")]
    leave_out: Option<String>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// Exit statuses of `verify`: 0 verified; 2 usage or I/O; 3 image; 10 + the
/// failed stage's position (10 prefix … 19 bundle).
/// What `verify` and `inspect` exit with: 10 + the stage that refused the
/// payload (FORMAT.md, "Verification order and errors").
const EXIT_CODES: &str = "\
Exit status:
  0   the payload verified (inspect: decoded)
  2   usage or I/O error (a missing file, a bad flag, no trusted keys)
  9   the file is no NFC image of a label
  10  prefix: not an enrollment payload (no EN1:), or too long
  11  base45: the text is not base45
  12  cose: not a COSE_Sign1
  13  alg: not signed with EdDSA
  14  kid: signed by a key that is not trusted (give its .pub.json with --trusted)
  15  signature: altered or forged
  16  version: a bundle format this reader does not know
  17  dictionary: compressed with a dictionary this reader does not have
  18  decompress: not valid zstd, or a decompression bomb
  19  bundle: malformed manifest or halves";

fn exit_code(error: &PayloadError) -> u8 {
    match error.stage() {
        Some(stage) => 10 + qr_packer::Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0) as u8,
        None => 3,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new_cmd(args),
        Command::Build(args) => build_cmd(args),
        Command::Simulate(args) => simulate_cmd(args),
        Command::Keygen(args) => keygen(args),
        Command::Pack(args) => pack(args),
        Command::Batch(args) => batch_cmd(args),
        Command::Inspect(args) => inspect(args),
        Command::Verify(args) => verify(args),
        Command::Render(args) => render(args),
        Command::TrainDict(args) => train_dict(args),
        #[cfg(feature = "pcsc")]
        Command::ReadTag(args) => read_tag::read_tag_to(args.reader.as_deref(), &args.out).map(|n| {
            say!("read {n} bytes from the tag into {}", args.out.display());
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(e) = error.downcast_ref::<PayloadError>() {
                return ExitCode::from(exit_code(e));
            }
            if error.downcast_ref::<nfc::NfcError>().is_some() {
                // Before stage 0: the NFC image held no label (FORMAT.md, "On an NFC tag").
                return ExitCode::from(9);
            }
            ExitCode::from(2)
        }
    }
}

fn new_cmd(args: NewArgs) -> Result<ExitCode> {
    let dir = new::new_app(&args.dir, args.access, args.name.as_deref(), args.device_id.as_deref(), args.operational)?;
    say!("wrote a {} enrollment app in {}", args.access, dir.display());
    say!("next: qr-packer build {0}   then: qr-packer simulate {0}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The access technology and device id an app's simulate.toml names, for
/// the size report (a wifi example device otherwise).
fn scenario_target(dir: &Path) -> (String, String) {
    match simulate::Scenario::load(&dir.join("simulate.toml")) {
        Ok(s) => (s.access, s.device_id),
        Err(_) => ("wifi".into(), "AC-DE-48-00-00-01".into()),
    }
}

fn build_cmd(args: BuildArgs) -> Result<ExitCode> {
    let app = compile::build_app(&args.dir)?;
    let (access, device_id) = scenario_target(&args.dir);
    let report = compile::size_report(&app, &access, &device_id, args.ec)?;
    compile::print(&app, &report);
    Ok(ExitCode::SUCCESS)
}

fn simulate_cmd(args: SimulateArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let is_app = args.target.is_dir();
    let config = args.config.unwrap_or_else(|| {
        if is_app { args.target.join("simulate.toml") } else { args.target.with_file_name("simulate.toml") }
    });
    let scenario = simulate::Scenario::load(&config)?;
    let outcome = if is_app {
        let app = compile::build_app(&args.target)?;
        if let Some((_, path)) = &app.operational {
            say!("the operational app ({}) is built and checked; the simulator runs the two halves only", path.display());
        }
        runtime.block_on(simulate::simulate_halves(&app.phone, &app.device, &scenario))?
    } else {
        let trusted_path = args.trusted.context("a label needs --trusted KEY.pub.json: the key that signed it")?;
        let trusted = TrustedKeys::from_files(&[trusted_path])?;
        if !args.target.exists() {
            bail!("{}: no such app folder or label file", args.target.display());
        }
        let target = args.target.to_str().context("the label's path is not UTF-8")?;
        let payload = Input::read(target)?.payload()?;
        let app = enrollment_assistant::ScannedApp::from_signed(payload, &trusted)?;
        match &args.device {
            Some(addr) => runtime.block_on(simulate::run_against(&app, &scenario, addr))?,
            None => runtime.block_on(simulate::run(&app, trusted, &scenario))?,
        }
    };
    simulate::report(&outcome, &scenario)?;
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    let public = args.public.clone().unwrap_or_else(|| args.out.with_extension("pub.json"));
    for path in [&args.out, &public] {
        if path.exists() && !args.force {
            bail!("{} exists (use --force to overwrite)", path.display());
        }
    }
    let key = ManufacturerKey::generate(&args.kid)?;
    key.to_file(&args.out)?;
    key.public_to_file(&public)?;
    say!("signing key {} (kid {:?}), public key {}", args.out.display(), key.kid(), public.display());
    Ok(ExitCode::SUCCESS)
}

/// The halves to pack and the manifest defaults a reference app implies.
fn load_halves(args: &HalvesArgs) -> Result<(Halves, Option<Manifest>)> {
    let mut operational = args.operational.as_ref().map(|p| read(p)).transpose()?;
    if let Some(name) = &args.app {
        let Some(app) = enrollment_apps::ALL.iter().find(|a| a.name == name) else {
            let names: Vec<_> = enrollment_apps::ALL.iter().map(|a| a.name).collect();
            bail!("no reference app {name:?}; there are {}", names.join(", "));
        };
        if args.with_operational {
            let Some(op) = enrollment_apps::operational(name) else {
                let names: Vec<_> = enrollment_apps::OPERATIONAL.iter().map(|o| o.app).collect();
                bail!("reference app {name:?} has no operational app; {} have one (or give --operational FILE)", names.join(", "));
            };
            operational = Some(op.component.to_vec());
        }
        let defaults = qr_packer::manifest::reference(app)?;
        return Ok((Halves { phone: app.phone.to_vec(), device: app.device.to_vec(), operational }, Some(defaults)));
    }
    match (&args.phone, &args.device) {
        (Some(phone), Some(device)) => Ok((Halves { phone: read(phone)?, device: read(device)?, operational }, None)),
        _ => bail!("give --app NAME, or --phone and --device"),
    }
}

fn load_manifest(args: &ManifestArgs, defaults: Option<Manifest>) -> Result<Manifest> {
    let mut m = match (&args.manifest, defaults) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).with_context(|| format!("{}: not a manifest", path.display()))?
            } else {
                toml::from_str(&text).with_context(|| format!("{}: not a manifest", path.display()))?
            }
        }
        (None, Some(defaults)) => defaults,
        (None, None) => Manifest {
            format_version: qr_packer::FORMAT_VERSION,
            app_id: String::new(),
            app_version: String::new(),
            manufacturer: String::new(),
            product: String::new(),
            access: String::new(),
            capabilities: Vec::new(),
            device_id: None,
            one_time_secret: None,
            params: BTreeMap::new(),
        },
    };
    let set = |field: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            *field = v.clone();
        }
    };
    set(&mut m.app_id, &args.app_id);
    set(&mut m.app_version, &args.app_version);
    set(&mut m.manufacturer, &args.manufacturer);
    set(&mut m.product, &args.product);
    set(&mut m.access, &args.access);
    m.capabilities.extend(args.capabilities.iter().cloned());
    m.params.extend(args.params.iter().cloned());
    Ok(m)
}

fn prepare(args: &HalvesArgs) -> Result<(PreparedApp, Option<Manifest>, usize)> {
    let (halves, defaults) = load_halves(args)?;
    let naive = naive_size(&halves.phone, &halves.device);
    let dictionary = match (&args.dictionary, args.dictionary_id.unwrap_or(dictionary::CURRENT_ID)) {
        (Some(path), id) => {
            let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
            Dictionary::manufacturer(id, &name, read(path)?)?
        }
        (None, id) if dictionary::MANUFACTURER_IDS.contains(&id) => {
            bail!("dictionary {id} is a manufacturer's own: give its file with --dictionary FILE")
        }
        (None, id) => Dictionary::by_id(id).with_context(|| format!("no shipped dictionary has id {id}"))?,
    };
    let app = PreparedApp::prepare(halves, &dictionary).context("refusing to pack these halves")?;
    Ok((app, defaults, naive))
}

fn pack(args: PackArgs) -> Result<ExitCode> {
    let key = ManufacturerKey::from_file(&args.key)?;
    let (app, defaults, naive) = prepare(&args.halves)?;
    let mut manifest = load_manifest(&args.manifest, defaults)?;
    if args.device_id.is_some() {
        manifest.device_id = args.device_id.clone();
    }
    if let Some(secret) = &args.secret {
        manifest.one_time_secret = Some(hex::decode(secret).context("--secret is not hex")?);
    }
    let (access, _) = manifest.validate()?;
    match (&manifest.device_id, args.unbound) {
        (None, false) => bail!(
            "no --device-id: this label would name no device, and enroll any fresh {access} device that trusts this key and was started \
             with --accept-unbound; give --device-id, or --unbound to print such a label"
        ),
        (Some(id), true) => bail!("--unbound, but the manifest names device {id}"),
        _ => {}
    }
    let payload = app.seal(&manifest, &key)?;
    let report = SizeReport::new(&app, &payload, naive, args.label.ec)?;
    let text = payload.to_text();
    let Ok(label) = Label::new(&text, args.label.ec) else {
        bail!(
            "the payload does not fit a QR code of version 40 at error correction {:?}:\n{}what to change: {}",
            args.label.ec,
            report.table(),
            report.advice()
        );
    };
    if let Some(max) = args.fit.max_version() {
        qr_packer::report::check_max_version(label.version(), max, args.label.ec, &report.parts)?;
    }
    let name = args.name.clone().or_else(|| manifest.device_id.clone()).unwrap_or_else(|| manifest.app_id.clone());
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let base = args.out_dir.join(&name);
    write(&base.with_extension("txt"), format!("{text}\n").as_bytes())?;
    let caption = qr_packer::print::Caption {
        product: manifest.product.clone(),
        device_id: manifest.device_id.clone(),
        key_id: key.kid().to_owned(),
    };
    let printed = qr_packer::print::Printed::new(&label, caption, args.print.spec())?;
    if let Some(warning) = printed.warning() {
        eprintln!("warning: {warning} (--size-mm)");
    }
    write(&base.with_extension("png"), &printed.png()?)?;
    write(&base.with_extension("svg"), printed.svg().as_bytes())?;
    write(&base.with_extension("pdf"), &printed.pdf())?;
    let ndef = if args.ndef {
        let message = nfc::encode_message(payload.as_bytes())?;
        write(&base.with_extension("ndef"), &message)?;
        Some(message.len())
    } else {
        None
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let ndef_ext = if ndef.is_some() { ",ndef" } else { "" };
        say!("packed {} for {} → {}.{{txt,png,svg,pdf{ndef_ext}}}", manifest.app_id, name, base.display());
        say!(
            "label: {:.1} mm wide, {:.2} mm a module (SVG, PDF); PNG at {} dpi: {:.1} mm",
            printed.size_mm(),
            printed.module_mm(),
            args.print.dpi,
            printed.png_size_mm()
        );
        if let Some(len) = ndef {
            say!("{}", nfc_fit(len));
        }
        let dict = app.dictionary();
        if dictionary::MANUFACTURER_IDS.contains(&dict.id()) {
            say!(
                "dictionary {} ({}): readers need it listed in the \"dictionaries\" of key {:?}'s public key file",
                dict.id(),
                dict.name(),
                key.kid()
            );
        }
        say_raw!("{}", report.table());
        if label.version() > args.fit.max_version {
            say!("note: above --max-version {}, printed because of --force; {}", args.fit.max_version, report.advice());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn batch_cmd(args: BatchArgs) -> Result<ExitCode> {
    let key = ManufacturerKey::from_file(&args.key)?;
    let (app, defaults, _) = prepare(&args.halves)?;
    let template = load_manifest(&args.manifest, defaults)?;
    let csv = std::fs::read_to_string(&args.csv).with_context(|| format!("reading {}", args.csv.display()))?;
    let parsed = batch::parse_csv(&csv).map_err(|e| anyhow::anyhow!("{}: {e}", args.csv.display()))?;
    let mut bad: Vec<batch::RowError> = Vec::new();
    let mut rows = Vec::new();
    for row in parsed {
        match row {
            Ok(row) => rows.push(row),
            Err(e) => bad.push(e),
        }
    }
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let images =
        (!args.no_images).then_some(Images { ec: args.label.ec, scale: 4, print: Some(args.print.spec()), svg: args.svg });
    if args.pdf && args.no_images {
        bail!("--pdf lays out the labels: it cannot be given with --no-images");
    }
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} devices, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build()?;
    let fit = batch::Fit { ec: args.label.ec, max_version: args.fit.max_version() };
    let outputs = pool.install(|| batch::produce(&app, &template, &key, &rows, fit, images, &|| bar.inc(1)));
    bar.finish_and_clear();
    let mut index = String::from("device_id,text,png,svg,text_chars,signed_bytes,qr_version\n");
    let mut sheet = Vec::new();
    for output in outputs {
        match output {
            Err(e) => bad.push(e),
            Ok(out) => {
                let base = args.out_dir.join(&out.device_id);
                let file = |ext: &str| format!("{}.{ext}", out.device_id);
                write(&base.with_extension("txt"), format!("{}\n", out.text).as_bytes())?;
                if let Some(png) = &out.png {
                    write(&base.with_extension("png"), png)?;
                }
                if let Some(svg) = &out.svg {
                    write(&base.with_extension("svg"), svg.as_bytes())?;
                }
                index.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    out.device_id,
                    file("txt"),
                    if out.png.is_some() { file("png") } else { String::new() },
                    if out.svg.is_some() { file("svg") } else { String::new() },
                    out.text.len(),
                    out.signed_bytes,
                    out.qr_version
                ));
                if args.pdf {
                    sheet.push((out.device_id, out.text));
                }
            }
        }
    }
    let written = index.lines().count() - 1;
    write(&args.out_dir.join("index.csv"), index.as_bytes())?;
    if args.pdf {
        write_sheet(&args.out_dir.join("labels.pdf"), &sheet, &template, &key, &args)?;
    }
    bad.sort_by_key(|e| e.line);
    for e in &bad {
        eprintln!("{}: {e}", args.csv.display());
    }
    say!(
        "{written} payloads written to {} (index.csv{}), {} bad rows",
        args.out_dir.display(),
        if args.pdf { ", labels.pdf" } else { "" },
        bad.len()
    );
    Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(4) })
}

/// Every label of a batch on A4 sheets, in the order of the CSV.
fn write_sheet(path: &Path, labels: &[(String, String)], template: &Manifest, key: &ManufacturerKey, args: &BatchArgs) -> Result<()> {
    let codes = labels.iter().map(|(_, text)| Label::new(text, args.label.ec)).collect::<Result<Vec<_>, _>>()?;
    let printed = labels
        .iter()
        .zip(&codes)
        .map(|((device_id, _), code)| {
            let caption = qr_packer::print::Caption {
                product: template.product.clone(),
                device_id: Some(device_id.clone()),
                key_id: key.kid().to_owned(),
            };
            qr_packer::print::Printed::new(code, caption, args.print.spec())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pdf = qr_packer::print::sheet_pdf(&printed, qr_packer::print::Sheet::A4)
        .context("a label is larger than an A4 page: give a smaller --size-mm")?;
    write(path, &pdf)
}

/// Which common NFC tags an NDEF message of `len` bytes fits.
fn nfc_fit(len: usize) -> String {
    let tags: Vec<String> = nfc::TAGS
        .iter()
        .map(|t| format!("{} ({} B): {}", t.name, t.user_bytes, if t.fits(len) { "fits" } else { "too small" }))
        .collect();
    format!("NFC: {len}-byte NDEF message; {}", tags.join(", "))
}

/// A label as a reader is given it: the text, from a file (text, QR image,
/// NFC image) or the argument itself.
enum Input {
    Text(String),
    Nfc(SignedPayload, nfc::ImageKind),
}

impl Input {
    fn read(input: &str) -> Result<Input> {
        if input.starts_with(qr_packer::text::PREFIX) || !Path::new(input).exists() {
            // Not a file: the text itself (its prefix is checked like any other).
            return Ok(Input::Text(input.to_owned()));
        }
        let bytes = read(Path::new(input))?;
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_ascii_lowercase();
        if head.trim_start().starts_with("<?xml") || head.trim_start().starts_with("<svg") {
            bail!(
                "{input} is an SVG drawing, which is not read back: give the label's PNG (or a photo of it), \
                 or the .txt that `pack` wrote beside it"
            );
        }
        let is_image = bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xFF, 0xD8]);
        if is_image {
            return Ok(Input::Text(read_label_image(&bytes)?));
        }
        // Text is text (its prefix is checked later), unless the file is
        // named as an NFC image and does not start like a label text.
        let nfc_file = Path::new(input).extension().is_some_and(|e| e == "ndef" || e == "bin");
        match std::str::from_utf8(&bytes) {
            Ok(text) if !nfc_file || text.trim_start().starts_with(qr_packer::text::PREFIX) => {
                return Ok(Input::Text(text.to_owned()));
            }
            _ => {}
        }
        let (payload, kind) =
            nfc::read_payload(&bytes).with_context(|| format!("{input}: neither a label text, a QR image nor an NFC image"))?;
        Ok(Input::Nfc(SignedPayload::from_bytes(payload), kind))
    }

    /// Where the label was read from.
    fn source(&self) -> &'static str {
        match self {
            Input::Text(_) => "QR label text",
            Input::Nfc(_, nfc::ImageKind::NdefMessage) => "NFC: NDEF message",
            Input::Nfc(_, nfc::ImageKind::Type2Dump) => "NFC: Type 2 tag dump",
            Input::Nfc(_, nfc::ImageKind::Type4NdefFile) => "NFC: Type 4 NDEF file",
        }
    }

    /// The label's text (for an NFC image, the text its QR code would carry).
    fn text(&self) -> String {
        match self {
            Input::Text(text) => text.clone(),
            Input::Nfc(payload, _) => payload.to_text(),
        }
    }

    fn payload(&self) -> Result<SignedPayload> {
        Ok(match self {
            Input::Text(text) => SignedPayload::from_text(text)?,
            Input::Nfc(payload, _) => payload.clone(),
        })
    }
}

/// The payload text from a file (text, QR image, NFC image) or the argument itself.
fn input_text(input: &str) -> Result<String> {
    Ok(Input::read(input)?.text())
}

fn trusted(args: &TrustArgs) -> Result<TrustedKeys> {
    let mut keys = TrustedKeys::from_files(&args.trusted)?;
    if let Some(dir) = &args.trusted_dir {
        keys.extend(TrustedKeys::from_dir(dir)?)?;
    }
    Ok(keys)
}

fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let input = Input::read(&args.input)?;
    let text = input.text();
    let payload = input.payload()?;
    let keys = trusted(&args.trust)?;
    let (bundle, checked) =
        if keys.is_empty() { (payload.decode_unverified()?, false) } else { (payload.verify(&keys)?, true) };
    if args.json {
        let json = serde_json::json!({
            "source": input.source(),
            "signer": bundle.signer,
            "signature_checked": checked,
            "format_version": bundle.manifest.format_version,
            "dictionary": bundle.dictionary,
            "manifest": bundle.manifest,
            "sizes": bundle.sizes,
            "qr_version_at_m": Label::new(&text, Ec::M).ok().map(|l| l.version()),
        });
        say!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let m = &bundle.manifest;
        say!("read from:     {}", input.source());
        say!("signer:        {} ({})", bundle.signer, if checked { "signature verified" } else { "signature NOT checked: no trusted keys given" });
        let whose = if dictionary::MANUFACTURER_IDS.contains(&bundle.dictionary) { " (the signer's own)" } else { "" };
        say!("format:        version {}, dictionary {}{whose}", m.format_version, bundle.dictionary);
        say!("app:           {} {} ({} / {})", m.app_id, m.app_version, m.manufacturer, m.product);
        say!("access:        {}", m.access);
        say!("device id:     {}", m.device_id.as_deref().unwrap_or("(any)"));
        say!("secret:        {}", m.one_time_secret.as_ref().map_or("(none)".into(), |s| format!("{} bytes", s.len())));
        say!("capabilities:  {}", m.capabilities.join(", "));
        for (k, v) in &m.params {
            say!("param:         {k} = {v}");
        }
        let s = bundle.sizes;
        say!(
            "sizes:         {} chars, {} bytes signed, {} compressed halves → phone {} + device {}{}",
            s.text_chars,
            s.signed,
            s.compressed_halves,
            s.phone,
            s.device,
            s.operational.map_or(String::new(), |o| format!(" + operational {o}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let keys = trusted(&args.trust)?;
    if keys.is_empty() {
        bail!("no trusted keys: give --trusted FILE or --trusted-dir DIR");
    }
    let bundle = Input::read(&args.input)?.payload()?.verify(&keys)?;
    say!(
        "verified: {} {} for {}, signed by {}",
        bundle.manifest.app_id,
        bundle.manifest.app_version,
        bundle.manifest.device_id.as_deref().unwrap_or("any device"),
        bundle.signer
    );
    Ok(ExitCode::SUCCESS)
}

fn render(args: RenderArgs) -> Result<ExitCode> {
    let text = input_text(&args.input)?;
    let text = text.trim_end_matches(['\n', '\r']);
    let label = Label::new(text, args.label.ec)?;
    if args.png.is_none() && args.svg.is_none() && !args.terminal {
        bail!("give at least one of --png FILE, --svg FILE, --terminal");
    }
    if let Some(path) = &args.png {
        write(path, &label.png(args.scale)?)?;
    }
    if let Some(path) = &args.svg {
        write(path, label.svg(args.scale).as_bytes())?;
    }
    if args.terminal {
        say!("{}", label.terminal());
    }
    eprintln!("QR version {} at error correction {:?}, {} characters", label.version(), label.ec(), text.len());
    Ok(ExitCode::SUCCESS)
}

fn train_dict(args: TrainDictArgs) -> Result<ExitCode> {
    if args.shipped {
        let current = format!("qr-packer/dictionaries/{}", Dictionary::current().name());
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from(current));
        let dict = dictionary::train_shipped()?;
        write(&out, &dict)?;
        say!("{} bytes (raw content of the stripped dictionary seeds) → {}", dict.len(), out.display());
        say!("note: a shipped dictionary must never change once labels name it; add a new id for new content");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(dir) = &args.samples else { return train_reference(&args) };
    let out = args.out.as_deref().context("give --out FILE")?;
    // Refuse a shipped id before any work.
    Dictionary::manufacturer(args.id, "", Vec::new())?;
    let read = qr_packer::train::samples_from_dir(dir)?;
    for (file, why) in &read.skipped {
        say!("skipped {file}: {why}");
    }
    let dict = qr_packer::train::train(&read.samples);
    let measured = qr_packer::train::leave_one_out(&read.samples)?;
    write(out, &dict)?;
    say!(
        "dictionary {}: {} bytes, raw content of {} stripped pairs → {}",
        args.id,
        dict.len(),
        read.samples.len(),
        out.display()
    );
    say!("  {:<32} {:>15} {:>14} {:>14}", "sample", "stripped halves", "no dictionary", "leave-one-out");
    for m in &measured {
        say!("  {:<32} {:>15} {:>14} {:>14}", m.name, m.halves, m.no_dictionary, m.leave_one_out);
    }
    say!("leave-one-out: each sample compressed with a dictionary trained on the other samples only");
    if read.samples.len() == 1 {
        say!("note: one sample: its leave-one-out dictionary is empty; add more of the family");
    }
    let file = out.file_name().map_or_else(|| out.display().to_string(), |n| n.to_string_lossy().into_owned());
    let entry = qr_packer::DictionaryFile { id: args.id, file, sha256: hex::encode(sha2::Sha256::digest(&dict)) };
    say!(
        "readers: put the file next to the signing key's public key file and list it there: \"dictionaries\": [{}]",
        serde_json::to_string(&entry)?
    );
    say!("pack with: qr-packer pack --dictionary {} --dictionary-id {} ...", out.display(), args.id);
    Ok(ExitCode::SUCCESS)
}

/// `train-dict --reference`: the shipped dictionary from the reference apps.
fn train_reference(args: &TrainDictArgs) -> Result<ExitCode> {
    if let Some(name) = &args.leave_out
        && !enrollment_apps::ALL.iter().any(|a| a.name == name)
    {
        bail!("no reference app {name:?}");
    }
    let out = args.out.clone().context("--reference writes where --out says")?;
    let dict = dictionary::train_reference(args.leave_out.as_deref())?;
    write(&out, &dict)?;
    say!("{} bytes (raw content of the stripped reference halves) → {}", dict.len(), out.display());
    if args.leave_out.is_none() {
        say!("note: a shipped dictionary must never change once labels name it; add a new id for new content");
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod exit_code_tests {
    use super::*;

    #[test]
    fn the_exit_code_table_names_every_stage_at_its_code() {
        for (i, stage) in qr_packer::Stage::ALL.iter().enumerate() {
            let line = format!("  {}  {}:", 10 + i, stage.name());
            assert!(EXIT_CODES.contains(&line), "missing {line:?}");
        }
    }

    #[test]
    fn every_flag_says_what_it_is_for() {
        use clap::CommandFactory;
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                assert!(arg.get_help().is_some(), "{path} --{} has no help text", arg.get_id());
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "qr-packer");
    }
}
