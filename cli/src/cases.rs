//! The lifecycle commands, one subcommand each, acting as a named staff
//! member (`--as`), and `case show` / `case list`.

use clap::{Args, Subcommand};
use gridcase_engine::domain::{ActorId, Case, CaseId, Command, Contact, Satisfaction, Submission};
use gridcase_engine::engine::{CommandOptions, CommandResult};
use gridcase_engine::geo::GeoPoint;
use gridcase_engine::time::{Timestamp, Zone};

use gridcase_api::auth::Principal;
use gridcase_api::pseudonym::Pseudonyms;
use gridcase_api::scope::Scope;

use crate::error::CliError;
use crate::output::{self, Table};
use crate::{store, Global};

/// Who acts, and how the call is made safe to retry.
#[derive(Args, Debug, Clone)]
pub struct ActAs {
    /// Staff id acting (or `resident:<id>` for a resident).
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: String,
    /// A retried call with the same key returns the first result and appends nothing.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Act only if the case is at this version.
    #[arg(long)]
    pub if_version: Option<u64>,
}

impl ActAs {
    /// The typed actor (`system`, `resident:<id>`, or a staff id).
    fn actor_id(&self) -> Result<ActorId, CliError> {
        let id = self.actor.parse()?;
        // Through a running server: only as the API key's actor.
        crate::remote::authorize(&id)?;
        Ok(id)
    }

    fn options(&self) -> CommandOptions {
        CommandOptions {
            idempotency_key: self.idempotency_key.clone(),
            expected_version: self.if_version,
            correlation_id: None,
        }
    }
}

/// `gridcase submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    act: ActAs,
    /// portal, hotline, grid_patrol or app.
    #[arg(long, default_value = "portal")]
    channel: String,
    /// consultation, help, complaint, report or suggestion.
    #[arg(long, default_value = "complaint")]
    kind: String,
    /// Category code (see the organisation file).
    #[arg(long)]
    category: String,
    /// normal, urgent or emergency.
    #[arg(long, default_value = "normal")]
    priority: String,
    /// What the resident said.
    #[arg(long)]
    description: String,
    /// Grid or micro-grid code, or a registered address (may be left out
    /// when --point is given).
    #[arg(long, default_value = "", required_unless_present = "point")]
    location: String,
    /// Where the resident was, as LAT,LON in degrees (WGS84), e.g.
    /// 33.39,120.16: placed in its micro-grid by the organisation's
    /// boundaries. A code in --location decides over it; it decides over
    /// an address.
    #[arg(long, value_name = "LAT,LON", allow_hyphen_values = true)]
    point: Option<String>,
    /// Resident's name.
    #[arg(long)]
    contact_name: Option<String>,
    /// Resident's phone.
    #[arg(long)]
    contact_phone: Option<String>,
}

/// Lifecycle commands on an existing case.
#[derive(Subcommand, Debug)]
pub enum CaseCmd {
    /// The community assigns the case to a grid worker (社区分单).
    Assign {
        /// Case id.
        case: String,
        /// Grid worker's staff id.
        #[arg(long)]
        worker: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Reject the case as invalid.
    Reject {
        /// Case id.
        case: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Merge the case into a duplicate.
    Merge {
        /// Case id.
        case: String,
        /// The case it duplicates.
        #[arg(long)]
        into: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// The resident withdraws the case.
    Withdraw {
        /// Case id.
        case: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Escalate from the community to the street (街镇呼叫).
    Escalate {
        /// Case id.
        case: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// The street dispatches to one or more departments (街道派单).
    Dispatch {
        /// Case id.
        case: String,
        /// Department code (repeat for joint handling).
        #[arg(long = "dept", required = true)]
        departments: Vec<String>,
        /// Lead department (default: the first).
        #[arg(long)]
        lead: Option<String>,
        /// Note to the departments.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// A department claims the case (领单).
    Claim {
        /// Case id.
        case: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// A department returns the case as not its responsibility (退单).
    Return {
        /// Case id.
        case: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// The holder asks for an extension (延期).
    Extend {
        /// Case id.
        case: String,
        /// New deadline asked for, in the district's zone (a date is local midnight).
        #[arg(long)]
        until: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// The unit above approves or refuses a pending extension.
    Extension {
        /// Case id.
        case: String,
        /// Approve (default: refuse).
        #[arg(long)]
        approve: bool,
        /// Why (required to refuse).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// A superior supervises an overdue case (督办).
    Supervise {
        /// Case id.
        case: String,
        /// Instruction.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// The holder resolves the case.
    Resolve {
        /// Case id.
        case: String,
        /// What was done.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Record the callback (回访).
    Callback {
        /// Case id.
        case: String,
        /// satisfied, basically_satisfied or unsatisfied.
        #[arg(long)]
        satisfaction: String,
        /// Whether the problem is solved: yes or no.
        #[arg(long, default_value = "yes")]
        solved: String,
        /// Note.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Reopen the case to its last holders (重办).
    Reopen {
        /// Case id.
        case: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
    },
    /// Close the case.
    Close {
        /// Case id.
        case: String,
        /// Note.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        act: ActAs,
    },
}

/// Reading cases.
#[derive(Subcommand, Debug)]
pub enum ShowCmd {
    /// The timeline and the escalation chain of one case.
    Show {
        /// Case id.
        id: String,
        /// Read as this actor (staff id or `resident:<id>`): the API's
        /// scope applies (a case outside it is "not found") and personal
        /// data only if the actor may read it. Default: the district.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
    },
    /// Open cases, optionally of one unit.
    List {
        /// Only cases of this unit (grid, community, street) or held by it (department).
        #[arg(long)]
        unit: Option<String>,
        /// List only the cases this actor may read (as `case show --as`).
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
    },
}

fn text<T: std::str::FromStr<Err = gridcase_engine::Error>>(s: &str) -> Result<T, CliError> {
    Ok(s.parse::<T>()?)
}

/// `gridcase submit`.
pub async fn submit(g: &Global, a: SubmitArgs) -> Result<(), CliError> {
    let contact = match (a.contact_name, a.contact_phone) {
        (Some(name), Some(phone)) => Some(Contact { name, phone }),
        (None, None) => None,
        _ => {
            return Err(CliError::Usage(
                "give both --contact-name and --contact-phone, or neither".into(),
            ))
        }
    };
    let sub = Submission {
        channel: text(&a.channel)?,
        kind: text(&a.kind)?,
        category: a.category,
        priority: text(&a.priority)?,
        description: a.description,
        location: a.location,
        contact,
        point: a.point.as_deref().map(GeoPoint::parse).transpose()?,
        media: Vec::new(),
        reporter: None,
    };
    let engine = store::open(g).await?;
    let r = engine.submit(&a.act.actor_id()?, sub, a.act.options()).await?;
    print_result(g, &engine.registry().zone, &r)
}

/// Runs a lifecycle command.
pub async fn run(g: &Global, c: CaseCmd) -> Result<(), CliError> {
    let mut until_text = None;
    let (case, mut cmd, act) = match c {
        CaseCmd::Assign { case, worker, act } => (case, Command::Assign { worker }, act),
        CaseCmd::Reject { case, reason, act } => (case, Command::Reject { reason }, act),
        CaseCmd::Merge { case, into, act } => (case, Command::Merge { into }, act),
        CaseCmd::Withdraw { case, reason, act } => (case, Command::Withdraw { reason }, act),
        CaseCmd::Escalate { case, reason, act } => (case, Command::Escalate { reason }, act),
        CaseCmd::Dispatch { case, departments, lead, note, act } => {
            (case, Command::Dispatch { departments, lead, note }, act)
        }
        CaseCmd::Claim { case, act } => (case, Command::Claim, act),
        CaseCmd::Return { case, reason, act } => (case, Command::Return { reason }, act),
        CaseCmd::Extend { case, until, reason, act } => {
            // A time a person typed is read in the district's zone, which is
            // known once the store is open (below).
            until_text = Some(until);
            (case, Command::RequestExtension { until: Timestamp(0), reason }, act)
        }
        CaseCmd::Extension { case, approve, reason, act } => {
            (case, Command::DecideExtension { approve, reason }, act)
        }
        CaseCmd::Supervise { case, note, act } => (case, Command::Supervise { note }, act),
        CaseCmd::Resolve { case, note, act } => (case, Command::Resolve { note }, act),
        CaseCmd::Callback { case, satisfaction, solved, note, act } => {
            let satisfaction: Satisfaction = text(&satisfaction)?;
            let solved = match solved.as_str() {
                "yes" | "true" => true,
                "no" | "false" => false,
                other => return Err(CliError::Usage(format!("--solved {other:?}: use yes or no"))),
            };
            (case, Command::Callback { satisfaction, solved, note }, act)
        }
        CaseCmd::Reopen { case, reason, act } => (case, Command::Reopen { reason }, act),
        CaseCmd::Close { case, note, act } => (case, Command::Close { note }, act),
    };
    let engine = store::open(g).await?;
    let zone = engine.registry().zone.clone();
    if let (Some(text), Command::RequestExtension { until, .. }) = (until_text, &mut cmd) {
        *until = zone.parse(&text)?;
    }
    let r = engine.execute(&act.actor_id()?, &CaseId::new(case)?, cmd, act.options()).await?;
    print_result(g, &zone, &r)
}

fn print_result(g: &Global, zone: &Zone, r: &CommandResult) -> Result<(), CliError> {
    if g.json {
        return output::json(r);
    }
    if r.deduplicated {
        crate::outln!("(retry of an earlier call: nothing appended)")?;
    }
    print_case(zone, &r.case)?;
    if let Some(o) = r.outcome.filter(|_| !r.deduplicated) {
        let names: Vec<&str> = r.events.iter().map(|e| e.event_type()).collect();
        crate::outln!(
            "appended    {} at positions {}..={}",
            names.join(", "),
            o.first_position,
            o.last_position
        )?;
    }
    Ok(())
}

/// Prints the state of a case as a short block. Stored text (codes,
/// description, location) goes through [`output::clean`]: a description
/// can hold terminal escape sequences. Times are in the district's `zone`.
pub fn print_case(zone: &Zone, c: &Case) -> Result<(), CliError> {
    use output::clean;
    crate::outln!("case        {}  (version {})", clean(&c.id), c.version)?;
    crate::outln!("status      {}  at {} level", c.status, c.level)?;
    let holders: Vec<String> = c
        .holders
        .iter()
        .map(|h| {
            let mut s = clean(&h.unit).into_owned();
            if h.lead && c.holders.len() > 1 {
                s.push_str(" (lead)");
            }
            if !h.claimed {
                s.push_str(" (unclaimed)");
            }
            if h.resolved {
                s.push_str(" (resolved)");
            }
            s
        })
        .collect();
    crate::outln!("held by     {}", holders.join(", "))?;
    crate::outln!(
        "category    {} · {} · {} · {}",
        clean(&c.category),
        c.kind,
        c.priority,
        c.channel
    )?;
    crate::outln!(
        "grid        {} (community {}, street {})",
        clean(&c.grid),
        clean(&c.community),
        clean(&c.street)
    )?;
    if let Some(m) = &c.micro_grid {
        crate::outln!("micro-grid  {}", clean(m))?;
    }
    crate::outln!("location    {}  (placed by {})", clean(&c.location), c.located_by)?;
    if let Some(p) = c.point {
        crate::outln!("point       {p}")?;
    }
    crate::outln!("description {}", clean(&c.description))?;
    crate::outln!(
        "due         {}{}",
        zone.format(c.resolution_due),
        if c.overdue_marked { "  OVERDUE" } else { "" }
    )?;
    if let Some(w) = &c.assigned_worker {
        crate::outln!("worker      {}", clean(w))?;
    }
    Ok(())
}

/// `gridcase case show` / `case list`.
pub async fn show(g: &Global, c: ShowCmd) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    match c {
        ShowCmd::Show { id, actor } => case_show(g, &engine, &id, actor.as_deref()).await,
        ShowCmd::List { unit, actor } => {
            engine.catch_up().await?;
            let reader = Reader::new(g, &engine, actor.as_deref())?;
            let reg = engine.registry();
            if let Some(u) = &unit {
                // An unknown unit is an error, not an empty list.
                reg.unit(u)?;
            }
            // `open_cases` holds exactly the open cases (`Case::is_open`),
            // the definition `stats` and the backlog count by too.
            let cases: Vec<std::sync::Arc<Case>> = engine
                .open_cases()
                .into_iter()
                .filter(|c| unit.as_deref().is_none_or(|u| c.concerns(&reg, u)))
                .filter(|c| reader.may_read(&reg, c))
                .collect();
            if g.json {
                // The JSON carries each case's contact and submitter.
                let mut out = Vec::with_capacity(cases.len());
                for c in &cases {
                    out.push(reader.case_json(&engine, c).await?);
                }
                return output::json(&out);
            }
            let mut t =
                Table::new(&["case", "status", "level", "held by", "category", "grid", "due"]);
            for c in &cases {
                t.row(vec![
                    c.id.clone(),
                    c.status.to_string(),
                    c.level.to_string(),
                    c.holder_units().join(","),
                    c.category.clone(),
                    c.grid.clone(),
                    reg.zone.format(c.resolution_due),
                ]);
            }
            crate::out!("{}", t.render())?;
            crate::outln!("{} open cases", cases.len())?;
            Ok(())
        }
    }
}

/// `gridcase case show ID`: the state, the timeline and the escalation chain.
pub async fn case_show(
    g: &Global,
    engine: &gridcase_engine::Engine,
    id: &str,
    actor: Option<&str>,
) -> Result<(), CliError> {
    let id = CaseId::new(id)?;
    let reader = Reader::new(g, engine, actor)?;
    let case = engine.case(&id).await?;
    let reg = engine.registry();
    if !reader.may_read(&reg, &case) {
        // The same answer as for a missing case: no existence oracle.
        return Err(gridcase_engine::Error::NotFound(format!(
            "case {:?} does not exist",
            id.as_str()
        ))
        .into());
    }
    let history = engine.history(&id).await?;
    let personal = reader.personal(&case);
    let mut timeline = gridcase_projections::timeline::timeline(&history, &reg);
    for e in &mut timeline {
        let shown = reader.names.shown(&e.actor, personal);
        if shown != e.actor {
            e.who = shown.replacen("resident:", "resident ", 1);
            e.actor = shown;
        }
    }
    let chain = gridcase_projections::chains::chain_of(&history);
    if g.json {
        let case_json = reader.case_json(engine, &case).await?;
        return output::json(
            &serde_json::json!({"case": case_json, "timeline": timeline, "chain": chain}),
        );
    }
    // The text shows the resident's id in the timeline, not the contact.
    if personal && is_resident(&case.submitted_by) {
        reader.record(engine, &case, &["submitted_by"]).await?;
    }
    print_case(&reg.zone, &case)?;
    let mut t = Table::new(&["#", "when", "who", "event", "what", "why"]);
    for e in &timeline {
        t.row(vec![
            e.version.to_string(),
            reg.zone.format(e.at),
            e.who.clone(),
            e.event_type.clone(),
            e.what.clone(),
            e.why.clone().unwrap_or_default(),
        ]);
    }
    crate::outln!("\ntimeline\n{}", t.render())?;
    if let Some(c) = chain {
        let mut t = Table::new(&["hop", "from", "to", "reason", "when", "held"]);
        for h in &c.hops {
            t.row(vec![
                format!("{:?}", h.kind),
                h.from.as_deref().map(|u| reg.name_of(u).to_string()).unwrap_or_default(),
                h.to.as_deref().map(|u| reg.name_of(u).to_string()).unwrap_or_default(),
                h.reason.to_string(),
                reg.zone.format(h.at),
                h.held_ms.map(crate::output::duration_ms).unwrap_or_default(),
            ]);
        }
        crate::outln!("escalation chain: {}\n{}", c.shape, t.render())?;
    }
    Ok(())
}

fn is_resident(actor: &str) -> bool {
    actor.starts_with("resident:")
}

/// Who reads with `case show` / `case list`: the district (the operator
/// with the store's files) or, with `--as`, an actor under the API's one
/// scope rule ([`Scope`]). An actor's reads of personal data are recorded
/// as the API records them (at the command's time, `--at` if given). The
/// operator's own reads are not: whoever holds the store's files can read
/// the log itself, so a record would prove nothing, and an append at the
/// wall clock's time would refuse every later backfilled `--at` command.
struct Reader {
    scope: Scope,
    /// The actor recorded as reader (`None`: the operator, not recorded).
    reader: Option<String>,
    names: Pseudonyms,
}

impl Reader {
    fn new(
        g: &Global,
        engine: &gridcase_engine::Engine,
        actor: Option<&str>,
    ) -> Result<Reader, CliError> {
        let names = Pseudonyms::load_or_create(&g.data).map_err(crate::serve::api_err)?;
        let Some(actor) = actor else {
            return Ok(Reader { scope: Scope::All, reader: None, names });
        };
        let id: ActorId = actor.parse()?;
        crate::remote::authorize(&id)?;
        let a = engine.actor(&id)?;
        let reader = Some(a.id.clone());
        let p = Principal {
            actor: a.id,
            actor_id: id,
            role: a.role,
            unit: a.unit,
            key_id: "cli".into(),
        };
        Ok(Reader { scope: Scope::of(&p), reader, names })
    }

    fn may_read(&self, reg: &gridcase_engine::org::Registry, c: &Case) -> bool {
        self.scope.may_read(reg, c)
    }

    fn personal(&self, c: &Case) -> bool {
        self.scope.may_read_personal_of(c)
    }

    async fn record(
        &self,
        engine: &gridcase_engine::Engine,
        c: &Case,
        fields: &[&str],
    ) -> Result<(), CliError> {
        let Some(reader) = &self.reader else { return Ok(()) };
        if fields.is_empty() || *reader == c.submitted_by {
            return Ok(());
        }
        engine.record_personal_read(reader, &CaseId::new(&c.id)?, fields, "cli").await?;
        Ok(())
    }

    /// The case as JSON for this reader: contact and the resident's real
    /// id only when it may read them (and then the read is recorded).
    async fn case_json(
        &self,
        engine: &gridcase_engine::Engine,
        c: &Case,
    ) -> Result<serde_json::Value, CliError> {
        let mut v = serde_json::to_value(c).map_err(|e| CliError::Json(e.to_string()))?;
        if self.personal(c) {
            let mut fields = Vec::new();
            if c.contact.is_some() {
                fields.push("contact");
            }
            if is_resident(&c.submitted_by) {
                fields.push("submitted_by");
            }
            self.record(engine, c, &fields).await?;
        } else if let Some(o) = v.as_object_mut() {
            o.insert("contact".into(), serde_json::Value::Null);
            o.insert("submitted_by".into(), self.names.shown(&c.submitted_by, false).into());
        }
        Ok(v)
    }
}

/// `gridcase audit reads --case ID`: who read which personal fields of a
/// case, and when. Reading the audit shows no personal data itself.
pub async fn audit_reads(g: &Global, id: &str) -> Result<(), CliError> {
    let engine = store::open(g).await?;
    let id = CaseId::new(id)?;
    // An unknown case is an error, not an empty list.
    engine.case(&id).await?;
    let zone = engine.registry().zone.clone();
    let reads = engine.personal_reads(&id).await?;
    if g.json {
        let v: Vec<serde_json::Value> = reads
            .iter()
            .map(|r| {
                serde_json::json!({
                    "position": r.position, "at": zone.format(r.at), "reader": r.reader,
                    "fields": r.fields, "surface": r.surface,
                })
            })
            .collect();
        return output::json(&v);
    }
    let mut t = Table::new(&["when", "reader", "fields", "surface"]);
    for r in &reads {
        t.row(vec![
            zone.format(r.at),
            // A resident's id is what a portal sent: no terminal escapes.
            output::clean(&r.reader).into_owned(),
            r.fields.join(","),
            output::clean(&r.surface).into_owned(),
        ]);
    }
    crate::out!("{}", t.render())?;
    crate::outln!(
        "{}: personal data shown {} times (at most once a minute per reader)",
        id.as_str(),
        reads.len()
    )?;
    Ok(())
}
