//! The lifecycle and authority rules, command by command, as
//! given/when/then over the pure `decide` function: every command's accepted
//! transition with its exact events, every command in every state where it
//! is not allowed (the state table below is the spec), and the authority
//! rules. The same table runs through a real `Engine`, which must refuse the
//! same commands with the same rule and append nothing.

use gridcase::engine::domain::event::OverdueKind;
use gridcase::engine::domain::{
    Actor, Case, Channel, Command, Event, HopReason, Level, Priority, Rule, Satisfaction, Status,
};
use gridcase::engine::org::Role;
use gridcase::engine::time::Timestamp;
use gridcase::engine::Error;

use super::fixture::*;

// ---------------------------------------------------------------- states

/// The states the table covers, each reached by a [`Story`] of real commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S {
    Submitted,
    Assigned,
    Escalated,
    Dispatched,
    Claimed,
    ExtensionPending,
    Overdue,
    Resolved,
    ResolvedSatisfied,
    ResolvedUnhappy,
    Closed,
    Rejected,
    Merged,
    Withdrawn,
}

const STATES: [S; 14] = [
    S::Submitted,
    S::Assigned,
    S::Escalated,
    S::Dispatched,
    S::Claimed,
    S::ExtensionPending,
    S::Overdue,
    S::Resolved,
    S::ResolvedSatisfied,
    S::ResolvedUnhappy,
    S::Closed,
    S::Rejected,
    S::Merged,
    S::Withdrawn,
];

fn reason(text: &str) -> String {
    text.to_string()
}

fn dispatch(departments: &[&str], lead: Option<&str>) -> Command {
    Command::Dispatch {
        departments: departments.iter().map(|d| d.to_string()).collect(),
        lead: lead.map(str::to_string),
        note: "请尽快处置".into(),
    }
}

fn callback(satisfaction: Satisfaction, solved: bool) -> Command {
    Command::Callback { satisfaction, solved, note: "电话回访".into() }
}

fn extension_until() -> Timestamp {
    at(10 * DAY)
}

/// The story that reaches `s`. Times: submitted at t0, one hour per step.
fn story(s: S) -> Story {
    let assign = Command::Assign { worker: "gw111".into() };
    match s {
        S::Submitted => Story::reported(),
        S::Assigned => story(S::Submitted).after(HOUR).by("cs11", assign),
        S::Escalated => story(S::Assigned)
            .after(HOUR)
            .by("gw111", Command::Escalate { reason: reason("需要街道协调城管") }),
        S::Dispatched => story(S::Escalated).after(HOUR).by("ss1", dispatch(&[D01], None)),
        S::Claimed => story(S::Dispatched).after(HOUR).by("d01a", Command::Claim),
        S::ExtensionPending => story(S::Claimed).after(HOUR).by(
            "d01a",
            Command::RequestExtension {
                until: extension_until(),
                reason: reason("需更换灯杆，等待配件"),
            },
        ),
        S::Overdue => story(S::Claimed).until(at(7 * DAY + HOUR)),
        S::Resolved => {
            story(S::Claimed).after(HOUR).by("d01a", Command::Resolve { note: "已更换灯泡".into() })
        }
        S::ResolvedSatisfied => {
            story(S::Resolved).after(HOUR).by("cs11", callback(Satisfaction::Satisfied, true))
        }
        S::ResolvedUnhappy => {
            story(S::Resolved).after(HOUR).by("cs11", callback(Satisfaction::Unsatisfied, false))
        }
        S::Closed => story(S::ResolvedSatisfied)
            .after(HOUR)
            .by("cs11", Command::Close { note: "办结".into() }),
        S::Rejected => story(S::Submitted)
            .after(HOUR)
            .by("cs11", Command::Reject { reason: reason("非本辖区事项") }),
        S::Merged => story(S::Submitted)
            .after(HOUR)
            .by("cs11", Command::Merge { into: OTHER_CASE_ID.into() }),
        S::Withdrawn => story(S::Submitted)
            .after(HOUR)
            .by(RESIDENT, Command::Withdraw { reason: reason("已自行解决") }),
    }
}

#[test]
fn the_states_are_what_they_say() {
    let want = |s: S| match s {
        S::Submitted => (Status::Submitted, Level::Community),
        S::Assigned => (Status::Assigned, Level::Community),
        S::Escalated => (Status::Escalated, Level::Street),
        S::Dispatched | S::Claimed | S::ExtensionPending | S::Overdue => {
            (Status::Dispatched, Level::Department)
        }
        S::Resolved | S::ResolvedSatisfied | S::ResolvedUnhappy => {
            (Status::Resolved, Level::Department)
        }
        S::Closed => (Status::Closed, Level::Department),
        S::Rejected => (Status::Rejected, Level::Community),
        S::Merged => (Status::Merged, Level::Community),
        S::Withdrawn => (Status::Withdrawn, Level::Community),
    };
    for s in STATES {
        let c = story(s).case();
        assert_eq!((c.status, c.level), want(s), "{s:?}");
        assert_eq!(c.version as usize, story(s).events().len());
    }
    assert!(story(S::ExtensionPending).case().pending_extension.is_some());
    assert!(story(S::Overdue).case().is_overdue(story(S::Overdue).now()));
    assert!(!story(S::Claimed).case().is_overdue(story(S::Claimed).now()));
}

// ---------------------------------------------------------------- the table

/// Every command kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Submit,
    Assign,
    Reject,
    Merge,
    Withdraw,
    Escalate,
    Dispatch,
    Claim,
    Return,
    RequestExtension,
    DecideExtension,
    Supervise,
    Resolve,
    Callback,
    Reopen,
    Close,
    CheckDeadlines,
}

const KINDS: [K; 17] = [
    K::Submit,
    K::Assign,
    K::Reject,
    K::Merge,
    K::Withdraw,
    K::Escalate,
    K::Dispatch,
    K::Claim,
    K::Return,
    K::RequestExtension,
    K::DecideExtension,
    K::Supervise,
    K::Resolve,
    K::Callback,
    K::Reopen,
    K::Close,
    K::CheckDeadlines,
];

/// The staff member of the unit holding the case at its level.
fn holder_actor(case: &Case) -> &'static str {
    match case.level {
        Level::Community => "cs11",
        Level::Street => "ss1",
        Level::Department => "d01a",
    }
}

/// The command of kind `k` sent by the actor who would normally send it.
fn canonical(k: K, case: &Case) -> (&'static str, Command) {
    match k {
        K::Submit => (RESIDENT, Command::Submit(street_light())),
        K::Assign => ("cs11", Command::Assign { worker: "gw111".into() }),
        K::Reject => ("sup", Command::Reject { reason: reason("重复诉求") }),
        K::Merge => ("sup", Command::Merge { into: OTHER_CASE_ID.into() }),
        K::Withdraw => (RESIDENT, Command::Withdraw { reason: reason("不需要了") }),
        K::Escalate => ("cs11", Command::Escalate { reason: reason("社区无法解决") }),
        K::Dispatch => ("ss1", dispatch(&[D03], None)),
        K::Claim => ("d01a", Command::Claim),
        K::Return => ("d01a", Command::Return { reason: reason("不属于本单位职责") }),
        K::RequestExtension => (
            holder_actor(case),
            Command::RequestExtension {
                until: extension_until(), reason: reason("需要更多时间")
            },
        ),
        K::DecideExtension => {
            ("sup", Command::DecideExtension { approve: true, reason: String::new() })
        }
        K::Supervise => ("sup", Command::Supervise { note: "请加快办理".into() }),
        K::Resolve => (holder_actor(case), Command::Resolve { note: "已处理".into() }),
        K::Callback => ("cs11", callback(Satisfaction::Satisfied, true)),
        K::Reopen => ("sup", Command::Reopen { reason: reason("居民反映问题依旧") }),
        K::Close => ("cs11", Command::Close { note: "办结".into() }),
        K::CheckDeadlines => (SYSTEM, Command::CheckDeadlines),
    }
}

/// The spec: `None` when the canonical command is accepted in state `s`,
/// otherwise the rule that refuses it.
fn expected(s: S, k: K) -> Option<Rule> {
    use S::*;
    const IT: Option<Rule> = Some(Rule::InvalidTransition);
    const NA: Option<Rule> = Some(Rule::NotAuthorised);
    let allowed_in = |states: &[S]| if states.contains(&s) { None } else { IT };
    match k {
        K::Submit => IT,
        K::Assign | K::Escalate => allowed_in(&[Submitted, Assigned]),
        K::Reject | K::Merge => allowed_in(&[Submitted, Assigned, Escalated]),
        K::Withdraw => allowed_in(&[
            Submitted,
            Assigned,
            Escalated,
            Dispatched,
            Claimed,
            ExtensionPending,
            Overdue,
        ]),
        K::Dispatch => allowed_in(&[Escalated, Dispatched, Claimed, ExtensionPending, Overdue]),
        // No department holds the case before dispatch or after a community-level end.
        K::Claim | K::Return
            if matches!(s, Submitted | Assigned | Escalated | Rejected | Merged | Withdrawn) =>
        {
            NA
        }
        K::Claim => allowed_in(&[Dispatched]),
        K::Return => allowed_in(&[Dispatched, Claimed, ExtensionPending, Overdue]),
        // An unclaimed department does not yet hold the work.
        K::RequestExtension if s == Dispatched => NA,
        K::RequestExtension => allowed_in(&[Submitted, Assigned, Escalated, Claimed]),
        K::DecideExtension => allowed_in(&[ExtensionPending]),
        K::Supervise => allowed_in(&[Overdue]),
        K::Resolve => {
            allowed_in(&[Submitted, Assigned, Escalated, Claimed, ExtensionPending, Overdue])
        }
        K::Callback => allowed_in(&[Resolved, ResolvedSatisfied, ResolvedUnhappy]),
        K::Reopen => allowed_in(&[ResolvedUnhappy, Closed]),
        K::Close => allowed_in(&[ResolvedSatisfied, ResolvedUnhappy]),
        K::CheckDeadlines => None,
    }
}

#[test]
fn every_command_in_every_state_follows_the_state_table() {
    let mut refused = 0;
    for s in STATES {
        let story = story(s);
        let case = story.case();
        for k in KINDS {
            let (who, command) = canonical(k, &case);
            let then = story.given().when(who, command.clone());
            match expected(s, k) {
                None => {
                    let events = then.then_accept();
                    assert!(
                        !events.is_empty() || k == K::CheckDeadlines,
                        "{k:?} in {s:?} decided nothing"
                    );
                }
                Some(rule) => {
                    then.then_expect_rejection(rule);
                    refused += 1;
                }
            }
        }
    }
    // The table is not trivially permissive: most pairs are refused.
    assert!(refused > 150, "only {refused} refusals");
}

#[tokio::test]
async fn the_engine_refuses_the_same_commands_with_the_same_rule_and_appends_nothing() {
    for s in STATES {
        let story = story(s);
        let case = story.case();
        let h = TestEngine::start().await;
        let id = h.play(&story).await;
        h.set_time(story.now());
        for k in KINDS {
            let Some(rule) = expected(s, k) else { continue };
            let (who, command) = canonical(k, &case);
            if let Command::Submit(sub) = command {
                // Through the engine a submission always opens a new case;
                // `execute` refuses a Submit on an existing one.
                let before = h.head();
                let err = h
                    .engine
                    .execute(
                        &actor_id(who),
                        &case_id(&id),
                        Command::Submit(sub),
                        Default::default(),
                    )
                    .await;
                assert!(matches!(err, Err(Error::InvalidInput(_))), "{err:?}");
                assert_eq!(h.head(), before);
                continue;
            }
            let r = h.refused(&id, who, command, rule).await;
            assert_eq!(r.state, Some(case.status), "{s:?}/{k:?}: {r}");
        }
        // Nothing changed the case.
        assert_eq!(*h.engine.case(&case_id(&id)).await.unwrap(), case, "{s:?}");
        assert_eq!(h.folded(&id).await, case, "{s:?}");
    }
}

#[tokio::test]
async fn the_engine_accepts_the_allowed_commands_with_the_same_events() {
    // One fresh engine per (state, allowed command): `play` checks that every
    // step, the last one included, decides the same events as `decide`.
    for s in STATES {
        let base = story(s);
        let case = base.case();
        for k in KINDS {
            if expected(s, k).is_some() || matches!(k, K::Submit) {
                continue;
            }
            let (who, command) = canonical(k, &case);
            let h = TestEngine::start().await;
            let next = base.clone().by(who, command);
            let id = h.play(&next).await;
            assert_eq!(h.folded(&id).await, next.case(), "{s:?}/{k:?}");
        }
    }
}

#[tokio::test]
async fn commands_on_a_missing_case_are_not_found_and_append_nothing() {
    let given = given_no_case().when("cs11", Command::Assign { worker: "gw111".into() });
    let r = given.then_expect_rejection(Rule::InvalidArgument);
    assert_eq!(r.state, None);
    let h = TestEngine::start().await;
    let before = h.head();
    let err = h.run("GC0000042", "cs11", Command::Assign { worker: "gw111".into() }).await;
    assert!(matches!(err, Err(Error::NotFound(_))), "{err:?}");
    assert_eq!(h.head(), before);
}

// ---------------------------------------------------------------- submit

fn submitted_event(channel: Channel, found_on_patrol: bool) -> Event {
    Event::CaseSubmitted {
        case_id: CASE_ID.into(),
        channel,
        kind: gridcase::engine::domain::RequestKind::Complaint,
        category: "street_light".into(),
        priority: Priority::Normal,
        description: street_light().description,
        location: "新村社区第一网格2号楼".into(),
        grid: G111.into(),
        micro_grid: Some("32090200100100102".into()),
        community: C11.into(),
        street: S1.into(),
        contact: street_light().contact,
        found_on_patrol,
        response_due: at(24 * HOUR),
        resolution_due: at(7 * DAY),
        hold_until: at(48 * HOUR),
    }
}

#[test]
fn a_resident_submits_and_the_community_holds_the_case() {
    let case = given_no_case()
        .when(RESIDENT, Command::Submit(street_light()))
        .then_expect_events(vec![submitted_event(Channel::App, false)])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Submitted, Level::Community));
    assert_eq!(case.holder_units(), vec![C11.to_string()]);
}

/// Regression (issue 15, point 16): a 30 KB name and a phone number that
/// starts with NUL were accepted and stored for good.
#[test]
fn a_contact_is_a_short_printable_name_and_a_phone_number() {
    use gridcase::engine::domain::Contact;
    let with = |name: &str, phone: &str| {
        let mut s = street_light();
        s.contact = Some(Contact { name: name.into(), phone: phone.into() });
        Command::Submit(s)
    };
    for (name, phone) in [
        ("李".repeat(30_000).as_str(), "13800000001"),
        ("", ""),
        ("李女士\u{1b}[2J", "13800000001"),
        ("李女士", "\u{0}13800000001"),
        ("李女士", "call me"),
        ("李女士", "12"),
        ("李女士", "1".repeat(33).as_str()),
    ] {
        given_no_case()
            .when(RESIDENT, with(name, phone))
            .then_expect_rejection(Rule::InvalidArgument);
    }
    for phone in ["13800000001", "+86 138-0000-0001", "(0515) 8888 1234", "12345", ""] {
        given_no_case().when(RESIDENT, with("李女士", phone)).then_accept();
    }
    // Open311 clients may send a phone without a name.
    given_no_case().when(RESIDENT, with("", "13800000001")).then_accept();
}

#[test]
fn a_grid_worker_submits_found_on_patrol_only_in_its_own_grid() {
    let mut patrol = street_light();
    patrol.channel = Channel::GridPatrol;
    given_no_case()
        .when("gw111", Command::Submit(patrol.clone()))
        .then_expect_events(vec![submitted_event(Channel::GridPatrol, true)]);
    // gw112's grid is the neighbouring one in the same community.
    given_no_case()
        .when("gw112", Command::Submit(patrol.clone()))
        .then_expect_rejection(Rule::NotAuthorised);
    // Residents cannot pretend to be on patrol.
    given_no_case()
        .when(RESIDENT, Command::Submit(patrol))
        .then_expect_rejection(Rule::NotAuthorised);
}

#[test]
fn a_hotline_call_is_taken_down_by_the_hotline_desk_not_claimed_by_a_resident() {
    let mut call = street_light();
    call.channel = Channel::Hotline;
    // The district's 12345 desk records the call; the resident is the contact.
    given_no_case().when("sup", Command::Submit(call.clone())).then_accept();
    given_no_case()
        .when(RESIDENT, Command::Submit(call))
        .then_expect_rejection(Rule::NotAuthorised);
    for channel in [Channel::Portal, Channel::App] {
        let mut s = street_light();
        s.channel = channel;
        given_no_case().when(RESIDENT, Command::Submit(s)).then_accept();
    }
}

#[test]
fn staff_submit_only_within_their_units() {
    for ok in ["cs11", "cs11b", "ss1", "ss1b", "sup"] {
        given_no_case().when(ok, Command::Submit(street_light())).then_accept();
    }
    for no in ["cs12", "cs21", "ss2", "d01a", "d05a", "aud", SYSTEM] {
        given_no_case()
            .when(no, Command::Submit(street_light()))
            .then_expect_rejection(Rule::NotAuthorised);
    }
}

#[test]
fn a_submission_must_name_a_known_category_a_grid_and_a_description() {
    let mut s = street_light();
    s.category = "ufo_sighting".into();
    given_no_case().when(RESIDENT, Command::Submit(s)).then_expect_rejection(Rule::InvalidArgument);
    for location in ["火星基地", C11, S1, D01] {
        let s = submission("street_light", location);
        given_no_case()
            .when(RESIDENT, Command::Submit(s))
            .then_expect_rejection(Rule::InvalidArgument);
    }
    for description in ["", "   ", &"长".repeat(4001)] {
        let mut s = street_light();
        s.description = description.to_string();
        given_no_case()
            .when(RESIDENT, Command::Submit(s))
            .then_expect_rejection(Rule::InvalidArgument);
    }
    // A grid code and a micro-grid code are locations too.
    given_no_case().when(RESIDENT, Command::Submit(submission("noise", G211))).then_accept();
    given_no_case()
        .when(RESIDENT, Command::Submit(submission("noise", "32090200200100102")))
        .then_accept();
}

#[test]
fn limits_follow_the_category_class_priority_and_kind() {
    let reg = registry();
    for cat in reg.categories.values() {
        for priority in Priority::ALL {
            let mut s = submission(&cat.code, G111);
            s.priority = *priority;
            let events = given_no_case().when(RESIDENT, Command::Submit(s.clone())).then_accept();
            let l = reg.policy.limits(s.kind, cat.class, *priority);
            let Event::CaseSubmitted { response_due, resolution_due, hold_until, .. } = &events[0]
            else {
                panic!("{events:?}")
            };
            assert_eq!(*response_due, at(l.response_minutes as i64 * MINUTE));
            assert_eq!(*resolution_due, at(l.resolution_minutes as i64 * MINUTE));
            assert_eq!(*hold_until, at(l.community_minutes as i64 * MINUTE));
        }
    }
    // An emergency is due in two hours whatever the category; a consultation is capped at three days.
    let mut s = submission("old_estate", G111);
    s.priority = Priority::Emergency;
    let e = given_no_case().when(RESIDENT, Command::Submit(s)).then_accept();
    assert!(
        matches!(&e[0], Event::CaseSubmitted { resolution_due, .. } if *resolution_due == at(2 * HOUR))
    );
    let mut s = submission("old_estate", G111);
    s.kind = gridcase::engine::domain::RequestKind::Consultation;
    let e = given_no_case().when(RESIDENT, Command::Submit(s)).then_accept();
    assert!(
        matches!(&e[0], Event::CaseSubmitted { resolution_due, .. } if *resolution_due == at(3 * DAY))
    );
}

#[test]
fn given_recorded_events_the_street_dispatches_from_them() {
    // The cqrs-es style with hand-written events: the history need not come
    // from a story, only be one the rules could have produced.
    let escalated = Event::CaseEscalated {
        from: C11.into(),
        to: S1.into(),
        reason: HopReason::Deadline,
        note: "社区时限已到".into(),
        hold_until: at(72 * HOUR),
    };
    given([submitted_event(Channel::App, false), escalated.clone()])
        .at(at(50 * HOUR))
        .when("ss1b", dispatch(&[D05, D01], Some(D05)))
        .then_expect_events(vec![Event::CaseDispatched {
            from: S1.into(),
            departments: vec![D05.into(), D01.into()],
            lead: D05.into(),
            reason: HopReason::Manual,
            note: "请尽快处置".into(),
            claim_due: at(74 * HOUR),
        }]);
    // The same history a day later: the community's staff no longer hold it.
    given([submitted_event(Channel::App, false), escalated])
        .at(at(74 * HOUR))
        .when("cs11", Command::Escalate { reason: reason("再次上报") })
        .then_expect_rejection(Rule::InvalidTransition);
}

// ---------------------------------------------------------------- assign

#[test]
fn the_community_assigns_a_grid_worker_of_its_own() {
    let case = story(S::Submitted)
        .given()
        .when("cs11", Command::Assign { worker: "gw112".into() })
        .then_expect_events(vec![Event::CaseAssigned { worker: "gw112".into() }])
        .unwrap();
    assert_eq!((case.status, case.assigned_worker.as_deref()), (Status::Assigned, Some("gw112")));
    // Reassigning is allowed while the community holds it.
    story(S::Assigned)
        .given()
        .when("cs11b", Command::Assign { worker: "gw112".into() })
        .then_expect_events(vec![Event::CaseAssigned { worker: "gw112".into() }]);
}

#[test]
fn only_the_cases_community_assigns_and_only_its_grid_workers() {
    for no in ["cs12", "cs21", "gw111", "ss1", "sup", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::Submitted)
            .given()
            .when(no, Command::Assign { worker: "gw111".into() })
            .then_expect_rejection(Rule::NotAuthorised);
    }
    // Workers of another community, staff who are not grid workers, unknown ids.
    for worker in ["gw121", "gw211", "cs11b", "ss1", "nobody"] {
        story(S::Submitted)
            .given()
            .when("cs11", Command::Assign { worker: worker.into() })
            .then_expect_rejection(Rule::InvalidArgument);
    }
}

// ---------------------------------------------------------------- reject, merge, withdraw

#[test]
fn the_holding_level_or_a_supervisor_rejects() {
    let reject = || Command::Reject { reason: reason("非本辖区事项") };
    let case = story(S::Assigned)
        .given()
        .when("cs11", reject())
        .then_expect_events(vec![Event::CaseRejected { reason: reason("非本辖区事项") }])
        .unwrap();
    assert_eq!(case.status, Status::Rejected);
    assert!(case.closed_at.is_some() && case.next_deadline().is_none());
    story(S::Escalated).given().when("ss1", reject()).then_accept();
    story(S::Escalated).given().when("sup", reject()).then_accept();
    // The community no longer holds an escalated case; the street does not hold a submitted one.
    story(S::Escalated).given().when("cs11", reject()).then_expect_rejection(Rule::NotAuthorised);
    story(S::Submitted).given().when("ss1", reject()).then_expect_rejection(Rule::NotAuthorised);
    for no in ["ss2", "cs12", "gw111", "d01a", "aud", RESIDENT] {
        story(S::Escalated).given().when(no, reject()).then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Submitted)
        .given()
        .when("cs11", Command::Reject { reason: "  ".into() })
        .then_expect_rejection(Rule::InvalidArgument);
}

#[test]
fn a_case_merges_only_into_another_open_case() {
    let merge = |into: &str| Command::Merge { into: into.into() };
    let case = story(S::Submitted)
        .given()
        .when("cs11", merge(OTHER_CASE_ID))
        .then_expect_events(vec![Event::CaseMerged { into: OTHER_CASE_ID.into() }])
        .unwrap();
    assert_eq!((case.status, case.merged_into.as_deref()), (Status::Merged, Some(OTHER_CASE_ID)));
    story(S::Escalated).given().when("ss1", merge(OTHER_CASE_ID)).then_accept();
    story(S::Submitted)
        .given()
        .when("cs11", merge(CASE_ID))
        .then_expect_rejection(Rule::InvalidArgument);
    story(S::Submitted)
        .given()
        .merge_target_open(false)
        .when("cs11", merge(OTHER_CASE_ID))
        .then_expect_rejection(Rule::InvalidArgument);
    for no in ["cs12", "ss1", "gw111", "d01a", "aud", RESIDENT] {
        story(S::Submitted)
            .given()
            .when(no, merge(OTHER_CASE_ID))
            .then_expect_rejection(Rule::NotAuthorised);
    }
}

#[tokio::test]
async fn the_engine_merges_only_into_an_existing_open_case() {
    let h = TestEngine::start().await;
    let a = h.submit(RESIDENT, street_light()).await;
    let b = h.submit(OTHER_RESIDENT, street_light()).await;
    h.refused(&a, "cs11", Command::Merge { into: "GC0000099".into() }, Rule::InvalidArgument).await;
    h.ok(&b, "cs11", Command::Withdraw { reason: reason("重复") }).await;
    h.refused(&a, "cs11", Command::Merge { into: b.clone() }, Rule::InvalidArgument).await;
    let c = h.submit(OTHER_RESIDENT, street_light()).await;
    let r = h.ok(&a, "cs11", Command::Merge { into: c.clone() }).await;
    assert_eq!(r.case.status, Status::Merged);
    // A merged case cannot be a merge target.
    h.refused(&c, "cs11", Command::Merge { into: a.clone() }, Rule::InvalidArgument).await;
}

#[test]
fn residents_withdraw_only_their_own_open_unresolved_case() {
    let withdraw = || Command::Withdraw { reason: reason("已自行解决") };
    let case = story(S::Dispatched)
        .given()
        .when(RESIDENT, withdraw())
        .then_expect_events(vec![Event::CaseWithdrawn { reason: reason("已自行解决") }])
        .unwrap();
    assert_eq!(case.status, Status::Withdrawn);
    story(S::Submitted).given().when("cs11", withdraw()).then_accept();
    story(S::Submitted).given().when("sup", withdraw()).then_accept();
    for no in [OTHER_RESIDENT, "cs12", "gw111", "ss1", "d01a", "aud", SYSTEM] {
        story(S::Submitted).given().when(no, withdraw()).then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Resolved)
        .given()
        .when(RESIDENT, withdraw())
        .then_expect_rejection(Rule::InvalidTransition);
}

// ---------------------------------------------------------------- escalate

#[test]
fn the_community_or_the_grids_worker_escalates_to_its_own_street() {
    let escalate = || Command::Escalate { reason: reason("需要街道协调") };
    let case = story(S::Submitted)
        .after(HOUR)
        .given()
        .when("cs11", escalate())
        .then_expect_events(vec![Event::CaseEscalated {
            from: C11.into(),
            to: S1.into(),
            reason: HopReason::Manual,
            note: reason("需要街道协调"),
            hold_until: at(HOUR + 24 * HOUR),
        }])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Escalated, Level::Street));
    assert_eq!(case.holder_units(), vec![S1.to_string()]);
    assert!(case.left_community);
    // The grid's own worker may escalate before being assigned.
    story(S::Submitted).given().when("gw111", escalate()).then_accept();
    // A worker of another grid may escalate only once assigned to the case.
    story(S::Submitted)
        .given()
        .when("gw112", escalate())
        .then_expect_rejection(Rule::NotAuthorised);
    let assigned_elsewhere =
        story(S::Submitted).by("cs11", Command::Assign { worker: "gw112".into() });
    assigned_elsewhere.given().when("gw112", escalate()).then_accept();
    assigned_elsewhere.given().when("gw111", escalate()).then_accept();
    for no in ["gw121", "gw211", "cs12", "cs21", "ss1", "sup", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::Assigned).given().when(no, escalate()).then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Submitted)
        .given()
        .when("cs11", Command::Escalate { reason: String::new() })
        .then_expect_rejection(Rule::InvalidArgument);
}

// ---------------------------------------------------------------- dispatch

#[test]
fn the_street_dispatches_to_departments() {
    let case = story(S::Escalated)
        .after(HOUR)
        .given()
        .when("ss1", dispatch(&[D01], None))
        .then_expect_events(vec![Event::CaseDispatched {
            from: S1.into(),
            departments: vec![D01.into()],
            lead: D01.into(),
            reason: HopReason::Manual,
            note: "请尽快处置".into(),
            claim_due: at(3 * HOUR + 24 * HOUR),
        }])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Dispatched, Level::Department));
    let h = case.holder(D01).unwrap();
    assert!(h.lead && !h.claimed && h.claim_due == Some(at(27 * HOUR)));
    assert_eq!(case.hold_until, None);
    // Another staff member of the same street, and the district supervisor.
    story(S::Escalated).given().when("ss1b", dispatch(&[D01], None)).then_accept();
    story(S::Escalated).given().when("sup", dispatch(&[D01], None)).then_accept();
}

#[test]
fn joint_handling_has_one_lead_and_adding_departments_keeps_it() {
    let case = story(S::Escalated)
        .given()
        .when("ss1", dispatch(&[D04, D01], Some(D01)))
        .then_expect_events(vec![Event::CaseDispatched {
            from: S1.into(),
            departments: vec![D04.into(), D01.into()],
            lead: D01.into(),
            reason: HopReason::Manual,
            note: "请尽快处置".into(),
            claim_due: at(2 * HOUR + 24 * HOUR),
        }])
        .unwrap();
    let leads: Vec<_> = case.holders.iter().filter(|h| h.lead).map(|h| h.unit.as_str()).collect();
    assert_eq!(leads, vec![D01]);
    // Adding a department to a dispatched case keeps the current lead.
    let case = story(S::Claimed)
        .given()
        .when("ss1", dispatch(&[D03], None))
        .then_expect_events(vec![Event::CaseDispatched {
            from: S1.into(),
            departments: vec![D03.into()],
            lead: D01.into(),
            reason: HopReason::Manual,
            note: "请尽快处置".into(),
            claim_due: at(4 * HOUR + 24 * HOUR),
        }])
        .unwrap();
    assert_eq!(case.holder_units(), vec![D01.to_string(), D03.to_string()]);
    assert!(case.holder(D01).unwrap().claimed && !case.holder(D03).unwrap().claimed);
    // ...or moves it to a named one.
    let case = story(S::Claimed)
        .given()
        .when("ss1", dispatch(&[D03], Some(D03)))
        .then_expect_events(vec![Event::CaseDispatched {
            from: S1.into(),
            departments: vec![D03.into()],
            lead: D03.into(),
            reason: HopReason::Manual,
            note: "请尽快处置".into(),
            claim_due: at(4 * HOUR + 24 * HOUR),
        }]);
    assert!(case.unwrap().holder(D03).unwrap().lead);
}

#[test]
fn street_staff_of_another_street_cannot_dispatch() {
    for no in ["ss2", "cs11", "gw111", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::Escalated)
            .given()
            .when(no, dispatch(&[D01], None))
            .then_expect_rejection(Rule::NotAuthorised);
    }
}

#[test]
fn a_dispatch_names_active_distinct_departments_and_a_lead_among_them() {
    let bad = [
        dispatch(&[], None),
        dispatch(&["D99"], None),
        dispatch(&[S1], None),
        dispatch(&[C11], None),
        dispatch(&[D03, D03], None),
        dispatch(&[D01], Some(D05)),
    ];
    for command in bad {
        story(S::Escalated)
            .given()
            .when("ss1", command)
            .then_expect_rejection(Rule::InvalidArgument);
    }
    // A department that already holds the case cannot be added again.
    story(S::Claimed)
        .given()
        .when("ss1", dispatch(&[D01], None))
        .then_expect_rejection(Rule::InvalidArgument);
}

// ---------------------------------------------------------------- claim and return

#[test]
fn a_holding_department_claims_once() {
    let case = story(S::Dispatched)
        .given()
        .when("d01b", Command::Claim)
        .then_expect_events(vec![Event::CaseClaimed { department: D01.into() }])
        .unwrap();
    assert!(case.holder(D01).unwrap().claimed);
    story(S::Claimed)
        .given()
        .when("d01b", Command::Claim)
        .then_expect_rejection(Rule::InvalidTransition);
    for no in ["d02a", "d05a", "ss1", "cs11", "sup", "aud", RESIDENT, SYSTEM] {
        story(S::Dispatched)
            .given()
            .when(no, Command::Claim)
            .then_expect_rejection(Rule::NotAuthorised);
    }
}

#[test]
fn the_last_department_returning_sends_the_case_back_to_the_street() {
    let ret = || Command::Return { reason: reason("不属于本单位职责") };
    let case = story(S::Dispatched)
        .after(HOUR)
        .given()
        .when("d01a", ret())
        .then_expect_events(vec![Event::CaseReturned {
            department: D01.into(),
            reason: reason("不属于本单位职责"),
            street_hold_until: Some(at(4 * HOUR + 24 * HOUR)),
        }])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Escalated, Level::Street));
    assert_eq!(case.holder_units(), vec![S1.to_string()]);
    assert_eq!((case.return_count, case.hold_until), (1, Some(at(28 * HOUR))));
    // The street's re-dispatch is recorded as caused by the return.
    let back = story(S::Dispatched).after(HOUR).by("d01a", ret());
    let redispatched = back.given().when("ss1", dispatch(&[D04], None)).then_accept();
    assert!(matches!(&redispatched[0], Event::CaseDispatched { reason: HopReason::Return, .. }));
    for no in ["d02a", "ss1", "sup", "aud", RESIDENT] {
        story(S::Dispatched).given().when(no, ret()).then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Claimed)
        .given()
        .when("d01a", Command::Return { reason: String::new() })
        .then_expect_rejection(Rule::InvalidArgument);
}

/// Two departments claimed, D02 leading (dispatched as `[D01, D02]`).
fn joint_claimed() -> Story {
    story(S::Escalated)
        .after(HOUR)
        .by("ss1", dispatch(&[D01, D02], Some(D02)))
        .after(HOUR)
        .by("d01a", Command::Claim)
        .by("d02a", Command::Claim)
}

#[test]
fn one_of_two_departments_returning_leaves_the_other_leading() {
    let ret = || Command::Return { reason: reason("不属于本单位职责") };
    let case = joint_claimed()
        .given()
        .when("d02a", ret())
        .then_expect_events(vec![Event::CaseReturned {
            department: D02.into(),
            reason: reason("不属于本单位职责"),
            street_hold_until: None,
        }])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Dispatched, Level::Department));
    assert_eq!(case.holder_units(), vec![D01.to_string()]);
    assert!(case.holder(D01).unwrap().lead);
}

#[test]
fn a_department_cannot_return_its_resolved_part_and_the_others_return_completes_the_case() {
    let ret = || Command::Return { reason: reason("不属于本单位职责") };
    let part = joint_claimed().by("d01a", Command::Resolve { note: "路灯已修复".into() });
    assert_eq!(part.case().status, Status::Dispatched);
    part.given().when("d01a", ret()).then_expect_rejection(Rule::InvalidTransition);
    let case = part.given().when("d02a", ret()).then_accept();
    let mut c = part.case();
    c.apply(&case[0], part.now());
    assert_eq!(c.status, Status::Resolved);
    assert_eq!(c.last_resolvers, vec![D01.to_string()]);
}

// ---------------------------------------------------------------- extensions

fn ask(until: Timestamp) -> Command {
    Command::RequestExtension { until, reason: reason("需要协调多个部门") }
}

fn approve() -> Command {
    Command::DecideExtension { approve: true, reason: String::new() }
}

fn refuse(why: &str) -> Command {
    Command::DecideExtension { approve: false, reason: why.into() }
}

#[test]
fn the_holder_requests_an_extension_before_its_deadline() {
    story(S::Claimed).given().when("d01b", ask(extension_until())).then_expect_events(vec![
        Event::ExtensionRequested {
            unit: D01.into(),
            until: extension_until(),
            reason: reason("需要协调多个部门"),
        },
    ]);
    story(S::Submitted)
        .given()
        .when("gw111", ask(extension_until()))
        .then_expect_rejection(Rule::NotAuthorised);
    story(S::Assigned).given().when("gw111", ask(extension_until())).then_accept();
    // Not the holder at its level.
    for no in ["ss1", "cs11", "d02a", "sup", "aud", RESIDENT] {
        story(S::Claimed)
            .given()
            .when(no, ask(extension_until()))
            .then_expect_rejection(Rule::NotAuthorised);
    }
    // The new deadline must be later than the current one (t0 + 7 days).
    for until in [at(7 * DAY), at(DAY)] {
        story(S::Claimed)
            .given()
            .when("d01a", ask(until))
            .then_expect_rejection(Rule::InvalidArgument);
    }
    // Exactly at the deadline is still in time; a millisecond later is not.
    story(S::Claimed).until(at(7 * DAY)).given().when("d01a", ask(extension_until())).then_accept();
    story(S::Claimed)
        .until(at(7 * DAY + 1))
        .given()
        .when("d01a", ask(extension_until()))
        .then_expect_rejection(Rule::InvalidTransition);
}

#[test]
fn the_street_decides_a_communitys_extension() {
    let pending = story(S::Submitted).after(HOUR).by("cs11", ask(extension_until()));
    let case = pending
        .given()
        .when("ss1", approve())
        .then_expect_events(vec![Event::ExtensionApproved {
            by: S1.into(),
            resolution_due: extension_until(),
        }])
        .unwrap();
    assert_eq!((case.resolution_due, case.pending_extension.clone()), (extension_until(), None));
    pending.given().when("ss1b", refuse("社区应按期办结")).then_expect_events(vec![
        Event::ExtensionRefused { by: S1.into(), reason: "社区应按期办结".into() },
    ]);
    pending.given().when("sup", approve()).then_accept();
    for no in ["ss2", "cs11", "cs12", "gw111", "d01a", "aud", RESIDENT, SYSTEM] {
        pending.given().when(no, approve()).then_expect_rejection(Rule::NotAuthorised);
    }
    pending.given().when("ss1", refuse("")).then_expect_rejection(Rule::InvalidArgument);
}

#[test]
fn the_district_supervisor_decides_extensions_from_the_street_and_departments() {
    let street = story(S::Escalated).by("ss1", ask(extension_until()));
    let department = story(S::ExtensionPending);
    for pending in [street, department] {
        let case = pending
            .given()
            .when("sup", approve())
            .then_expect_events(vec![Event::ExtensionApproved {
                by: DISTRICT.into(),
                resolution_due: extension_until(),
            }])
            .unwrap();
        assert_eq!(case.resolution_due, extension_until());
        pending.given().when("sup2", refuse("不符合延期条件")).then_accept();
        for no in ["ss1", "ss1b", "cs11", "d01a", "d01b", "aud", RESIDENT, SYSTEM] {
            pending.given().when(no, approve()).then_expect_rejection(Rule::NotAuthorised);
        }
    }
}

#[test]
fn one_extension_request_at_a_time_and_a_move_up_drops_it() {
    let pending = story(S::Assigned).by("cs11", ask(extension_until()));
    pending.given().when("cs11", ask(at(12 * DAY))).then_expect_rejection(Rule::InvalidTransition);
    let refused = pending.clone().by("ss1", refuse("不同意"));
    assert_eq!(refused.case().pending_extension, None);
    assert_eq!(refused.case().resolution_due, at(7 * DAY));
    refused.given().when("cs11", ask(at(12 * DAY))).then_accept();
    // Escalating drops the community's pending request: the street does not inherit it.
    let escalated = pending.by("cs11", Command::Escalate { reason: reason("社区无法解决") });
    assert_eq!(escalated.case().pending_extension, None);
    escalated.given().when("sup", approve()).then_expect_rejection(Rule::InvalidTransition);
}

/// Every other move of the case drops a pending request (escalation,
/// dispatch, a return to the street, resolution); a department that returns
/// its part of a joint handling leaves the case, so its request must go too.
#[test]
fn a_returning_departments_extension_request_is_dropped() {
    let s = joint_claimed()
        .by("d01a", ask(extension_until()))
        .by("d01a", Command::Return { reason: reason("不属于本单位职责") });
    assert_eq!(s.case().holder_units(), vec![D02.to_string()]);
    assert_eq!(s.case().pending_extension, None, "D01 no longer holds the case");
    s.given().when("sup", approve()).then_expect_rejection(Rule::InvalidTransition);
}

// ---------------------------------------------------------------- supervise

#[test]
fn only_overdue_cases_are_supervised_by_a_superior_of_the_holder() {
    let note = || Command::Supervise { note: "请于今日内办结".into() };
    let case = story(S::Overdue)
        .given()
        .when("sup", note())
        .then_expect_events(vec![Event::CaseSupervised {
            by: DISTRICT.into(),
            note: "请于今日内办结".into(),
        }])
        .unwrap();
    assert_eq!(case.status, Status::Dispatched);
    // Exactly at the deadline is not yet overdue.
    story(S::Claimed)
        .until(at(7 * DAY))
        .given()
        .when("sup", note())
        .then_expect_rejection(Rule::InvalidTransition);
    story(S::Claimed).until(at(7 * DAY + 1)).given().when("sup", note()).then_accept();
    // The street supervises its communities, not departments.
    let late_in_community = story(S::Assigned).until(at(8 * DAY));
    late_in_community.given().when("ss1", note()).then_expect_events(vec![Event::CaseSupervised {
        by: S1.into(),
        note: "请于今日内办结".into(),
    }]);
    late_in_community.given().when("ss2", note()).then_expect_rejection(Rule::NotAuthorised);
    story(S::Overdue).given().when("ss1", note()).then_expect_rejection(Rule::NotAuthorised);
    for no in ["cs11", "gw111", "d01a", "d02a", "aud", RESIDENT, SYSTEM] {
        story(S::Overdue).given().when(no, note()).then_expect_rejection(Rule::NotAuthorised);
    }
    // A resolved case is no longer overdue, however late it was resolved.
    story(S::Resolved)
        .until(at(9 * DAY))
        .given()
        .when("sup", note())
        .then_expect_rejection(Rule::InvalidTransition);
}

// ---------------------------------------------------------------- resolve

fn resolve() -> Command {
    Command::Resolve { note: "已处理完毕".into() }
}

#[test]
fn the_holder_resolves_at_its_level() {
    // Community: staff or the assigned grid worker.
    let case = story(S::Assigned)
        .given()
        .when("gw111", resolve())
        .then_expect_events(vec![Event::CaseResolved {
            unit: C11.into(),
            note: "已处理完毕".into(),
            complete: true,
        }])
        .unwrap();
    assert_eq!((case.status, case.last_resolved_level), (Status::Resolved, Level::Community));
    assert_eq!(case.last_resolvers, vec![C11.to_string()]);
    story(S::Submitted).given().when("cs11b", resolve()).then_accept();
    // Street.
    story(S::Escalated).given().when("ss1b", resolve()).then_expect_events(vec![
        Event::CaseResolved { unit: S1.into(), note: "已处理完毕".into(), complete: true },
    ]);
    // Department.
    story(S::Claimed).given().when("d01a", resolve()).then_expect_events(vec![
        Event::CaseResolved { unit: D01.into(), note: "已处理完毕".into(), complete: true },
    ]);
}

#[test]
fn only_the_holder_resolves() {
    // An unassigned worker, even of the case's grid, and the street while the community holds it.
    for no in ["gw111", "gw112", "ss1", "cs12", "sup", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::Submitted).given().when(no, resolve()).then_expect_rejection(Rule::NotAuthorised);
    }
    for no in ["cs11", "gw111", "ss2", "sup", "d01a", "aud", RESIDENT] {
        story(S::Escalated).given().when(no, resolve()).then_expect_rejection(Rule::NotAuthorised);
    }
    // A department cannot resolve a case it does not hold...
    for no in ["d02a", "d03a", "ss1", "cs11", "sup", "aud", RESIDENT] {
        story(S::Claimed).given().when(no, resolve()).then_expect_rejection(Rule::NotAuthorised);
    }
    // ...or before claiming it.
    story(S::Dispatched)
        .given()
        .when("d01a", resolve())
        .then_expect_rejection(Rule::InvalidTransition);
    story(S::Claimed)
        .given()
        .when("d01a", Command::Resolve { note: String::new() })
        .then_expect_rejection(Rule::InvalidArgument);
}

#[test]
fn joint_handling_is_resolved_when_every_department_resolved_its_part() {
    let first = joint_claimed().given().when("d02a", resolve()).then_expect_events(vec![
        Event::CaseResolved { unit: D02.into(), note: "已处理完毕".into(), complete: false },
    ]);
    assert_eq!(first.unwrap().status, Status::Dispatched);
    let part = joint_claimed().by("d02a", resolve());
    // The same department (any of its staff) cannot resolve its part twice.
    part.given().when("d02a", resolve()).then_expect_rejection(Rule::InvalidTransition);
    let case = part
        .given()
        .when("d01b", resolve())
        .then_expect_events(vec![Event::CaseResolved {
            unit: D01.into(),
            note: "已处理完毕".into(),
            complete: true,
        }])
        .unwrap();
    assert_eq!(case.status, Status::Resolved);
    let mut resolvers = case.last_resolvers.clone();
    resolvers.sort();
    assert_eq!(resolvers, vec![D01.to_string(), D02.to_string()]);
    assert_eq!(case.last_resolved_level, Level::Department);
    // An unclaimed co-holder blocks nothing but must claim before resolving.
    let unclaimed =
        story(S::Escalated).by("ss1", dispatch(&[D01, D02], None)).by("d01a", Command::Claim);
    unclaimed.given().when("d02a", resolve()).then_expect_rejection(Rule::InvalidTransition);
    unclaimed.given().when("d01a", resolve()).then_accept();
}

// ---------------------------------------------------------------- callback, close

#[test]
fn callbacks_only_when_resolved() {
    let cb = || callback(Satisfaction::BasicallySatisfied, true);
    let case = story(S::Resolved)
        .given()
        .when("cs11", cb())
        .then_expect_events(vec![Event::CallbackRecorded {
            satisfaction: Satisfaction::BasicallySatisfied,
            solved: true,
            note: "电话回访".into(),
        }])
        .unwrap();
    assert_eq!(
        case.last_callback.as_ref().map(|c| (c.satisfaction, c.solved)),
        Some((Satisfaction::BasicallySatisfied, true))
    );
    story(S::Resolved).given().when("sup", cb()).then_accept();
    for no in ["cs12", "gw111", "ss1", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::Resolved).given().when(no, cb()).then_expect_rejection(Rule::NotAuthorised);
    }
    for s in [S::Claimed, S::Closed] {
        story(s).given().when("cs11", cb()).then_expect_rejection(Rule::InvalidTransition);
    }
}

#[test]
fn closing_needs_a_callback() {
    let close = || Command::Close { note: "办结".into() };
    story(S::Resolved).given().when("cs11", close()).then_expect_rejection(Rule::InvalidTransition);
    let case = story(S::ResolvedSatisfied)
        .given()
        .when("cs11b", close())
        .then_expect_events(vec![Event::CaseClosed { note: "办结".into() }])
        .unwrap();
    assert_eq!(case.status, Status::Closed);
    assert_eq!(case.closed_at, Some(story(S::ResolvedSatisfied).now()));
    assert!(!case.is_open());
    story(S::ResolvedSatisfied).given().when("sup", close()).then_accept();
    for no in ["cs12", "gw111", "ss1", "d01a", "aud", RESIDENT, SYSTEM] {
        story(S::ResolvedSatisfied)
            .given()
            .when(no, close())
            .then_expect_rejection(Rule::NotAuthorised);
    }
}

// ---------------------------------------------------------------- reopen

fn reopen() -> Command {
    Command::Reopen { reason: reason("居民反映问题依旧") }
}

#[test]
fn an_unhappy_callback_reopens_a_resolved_case_to_its_last_resolvers() {
    let s = story(S::ResolvedUnhappy);
    let case = s
        .given()
        .when("cs11", reopen())
        .then_expect_events(vec![Event::CaseReopened {
            reason: reason("居民反映问题依旧"),
            level: Level::Department,
            holders: vec![D01.into()],
            resolution_due: s.now().plus_ms(7 * DAY),
            hold_until: None,
        }])
        .unwrap();
    assert_eq!(
        (case.status, case.level, case.reopen_count),
        (Status::Dispatched, Level::Department, 1)
    );
    assert!(
        case.holder(D01).unwrap().claimed,
        "a reopened case goes back to work, not to the claim queue"
    );
    assert_eq!((case.last_callback.clone(), case.overdue_marked), (None, false));
    s.given().when("sup", reopen()).then_accept();
    // Not solved, even if rated satisfied, also reopens; a happy callback does not.
    story(S::Resolved)
        .by("cs11", callback(Satisfaction::Satisfied, false))
        .given()
        .when("cs11", reopen())
        .then_accept();
    story(S::Resolved)
        .by("cs11", callback(Satisfaction::BasicallySatisfied, true))
        .given()
        .when("cs11", reopen())
        .then_expect_rejection(Rule::InvalidTransition);
    story(S::Resolved).given().when("sup", reopen()).then_expect_rejection(Rule::InvalidTransition);
    for no in ["cs12", "gw111", "ss1", "d01a", "aud", RESIDENT, SYSTEM] {
        s.given().when(no, reopen()).then_expect_rejection(Rule::NotAuthorised);
    }
    s.given()
        .when("cs11", Command::Reopen { reason: " ".into() })
        .then_expect_rejection(Rule::InvalidArgument);
}

#[test]
fn a_case_resolved_in_the_community_is_reopened_in_the_community() {
    let s = story(S::Assigned)
        .after(HOUR)
        .by("gw111", resolve())
        .after(HOUR)
        .by("cs11", callback(Satisfaction::Unsatisfied, false))
        .after(HOUR);
    let case = s
        .given()
        .when("cs11", reopen())
        .then_expect_events(vec![Event::CaseReopened {
            reason: reason("居民反映问题依旧"),
            level: Level::Community,
            holders: vec![C11.into()],
            resolution_due: s.now().plus_ms(7 * DAY),
            hold_until: Some(s.now().plus_ms(48 * HOUR)),
        }])
        .unwrap();
    assert_eq!((case.status, case.level), (Status::Assigned, Level::Community));
    assert_eq!(case.hold_until, Some(s.now().plus_ms(48 * HOUR)));
}

#[test]
fn a_supervisor_reopens_a_closed_case_within_the_window() {
    let closed = story(S::Closed);
    let closed_at = closed.case().closed_at.unwrap();
    let window = registry().policy.reopen_window_days as i64 * DAY;
    let case = closed.given().when("sup", reopen()).then_expect_events(vec![Event::CaseReopened {
        reason: reason("居民反映问题依旧"),
        level: Level::Department,
        holders: vec![D01.into()],
        resolution_due: closed.now().plus_ms(7 * DAY),
        hold_until: None,
    }]);
    let case = case.unwrap();
    assert_eq!((case.status, case.closed_at), (Status::Dispatched, None));
    for no in ["cs11", "ss1", "d01a", "aud", RESIDENT, SYSTEM] {
        closed.given().when(no, reopen()).then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Closed).until(closed_at.plus_ms(window)).given().when("sup", reopen()).then_accept();
    story(S::Closed)
        .until(closed_at.plus_ms(window + 1))
        .given()
        .when("sup", reopen())
        .then_expect_rejection(Rule::InvalidTransition);
}

#[test]
fn rejected_merged_and_withdrawn_cases_are_never_reopened() {
    for s in [S::Rejected, S::Merged, S::Withdrawn] {
        for who in ["sup", "cs11"] {
            story(s).given().when(who, reopen()).then_expect_rejection(Rule::InvalidTransition);
        }
    }
}

// ---------------------------------------------------------------- deadlines command

#[test]
fn only_the_engine_checks_deadlines() {
    for no in ["sup", "ss1", "cs11", "aud", RESIDENT] {
        story(S::Overdue)
            .given()
            .when(no, Command::CheckDeadlines)
            .then_expect_rejection(Rule::NotAuthorised);
    }
    story(S::Submitted).given().when(SYSTEM, Command::CheckDeadlines).then_expect_events(vec![]);
    story(S::Overdue).given().when(SYSTEM, Command::CheckDeadlines).then_expect_events(vec![
        Event::CaseOverdue { what: OverdueKind::Resolution, due: at(7 * DAY) },
    ]);
    // A staff member who is not flagged as the engine cannot act as it.
    let fake =
        Actor { id: "system".into(), role: Role::DistrictSupervisor, unit: None, system: false };
    story(S::Overdue)
        .given()
        .when_actor(&fake, Command::CheckDeadlines)
        .then_expect_rejection(Rule::NotAuthorised);
}

// ---------------------------------------------------------------- who can do nothing

#[test]
fn auditors_other_residents_and_the_engine_can_do_nothing() {
    for s in STATES {
        let st = story(s);
        let case = st.case();
        for k in KINDS {
            if expected(s, k).is_some() || matches!(k, K::Submit | K::CheckDeadlines) {
                continue;
            }
            let (_, command) = canonical(k, &case);
            for no in ["aud", OTHER_RESIDENT, SYSTEM] {
                st.given().when(no, command.clone()).then_expect_rejection(Rule::NotAuthorised);
            }
            // The submitting resident may only withdraw.
            if k != K::Withdraw {
                st.given()
                    .when(RESIDENT, command.clone())
                    .then_expect_rejection(Rule::NotAuthorised);
            }
        }
    }
}

#[tokio::test]
async fn unknown_and_malformed_actors_are_refused_by_the_engine() {
    let h = TestEngine::start().await;
    let id = h.submit(RESIDENT, street_light()).await;
    let before = h.head();
    for who in ["nobody", "resident:", &format!("resident:{}", "x".repeat(65))] {
        let r = h.run(&id, who, Command::Withdraw { reason: reason("x") }).await;
        assert!(matches!(r, Err(Error::NotFound(_)) | Err(Error::InvalidInput(_))), "{who}: {r:?}");
    }
    assert_eq!(h.head(), before);
}
