//! The seeds' chain end to end through a real `Engine`: a resident reports
//! (居民点单), the community sorts it and cannot solve it (社区分单, 街镇呼叫),
//! the street dispatches (街道派单) to a department that returns it (退单),
//! re-dispatches to two departments in joint handling (协同整治) with one
//! leading, they claim (单位领单) and resolve it, the resident is unsatisfied
//! at the callback (回访), it is reopened to both departments (重办) and
//! resolved again, the callback is satisfied and the case is closed. After
//! every step: the state, the event types so far, and that rebuilding the
//! case from its history equals the live state.

use gridcase::engine::domain::{Case, Command, Level, Satisfaction, Status};
use gridcase::engine::engine::CommandResult;

use super::fixture::*;

struct Run {
    h: TestEngine,
    id: String,
    types: Vec<&'static str>,
}

impl Run {
    /// Runs `command` by `who` at `t0 + offset`, expects `new_types` appended,
    /// and checks live == folded.
    async fn step(
        &mut self,
        offset: i64,
        who: &str,
        command: Command,
        new_types: &[&'static str],
    ) -> Case {
        self.h.set_time(at(offset));
        let r: CommandResult = self.h.ok(&self.id, who, command).await;
        let got: Vec<&str> = r.events.iter().map(|e| e.event_type()).collect();
        assert_eq!(got, new_types, "events of this step");
        self.types.extend_from_slice(new_types);
        self.check(&r.case).await;
        Case::clone(&r.case)
    }

    async fn check(&self, live: &Case) {
        assert_eq!(self.h.event_types(&self.id).await, self.types, "history so far");
        assert_eq!(live.version as usize, self.types.len());
        assert_eq!(
            &*self.h.engine.case(&case_id(&self.id)).await.unwrap(),
            live,
            "engine.case == command result"
        );
        assert_eq!(&self.h.folded(&self.id).await, live, "history + fold == live state");
    }
}

fn units(c: &Case) -> Vec<(&str, bool, bool, bool)> {
    c.holders.iter().map(|h| (h.unit.as_str(), h.lead, h.claimed, h.resolved)).collect()
}

#[tokio::test]
async fn the_seeds_chain_from_report_to_closure() {
    let h = TestEngine::start().await;
    // 居民点单: a resident of 五星社区 reports sewage discharged next to building 1.
    let mut report = submission("sewage", "五星社区第一网格1号楼");
    report.description = "1号楼旁边有商户向雨水管直排污水，气味很大".into();
    let r = h.engine.submit(&actor_id(OTHER_RESIDENT), report, Default::default()).await.unwrap();
    let id = r.case.id.clone();
    let mut run = Run { h, id, types: vec!["CaseSubmitted"] };
    run.check(&r.case).await;
    let c = &r.case;
    assert_eq!(
        (c.status, c.level, c.grid.as_str(), c.micro_grid.as_deref()),
        (Status::Submitted, Level::Community, G211, Some("32090200200100101"))
    );
    assert_eq!(
        (c.community.as_str(), c.street.as_str(), c.submitted_by.as_str()),
        (C21, S2, OTHER_RESIDENT)
    );

    // 社区分单: the community assigns its grid worker.
    let c =
        run.step(HOUR, "cs21", Command::Assign { worker: "gw211".into() }, &["CaseAssigned"]).await;
    assert_eq!((c.status, c.assigned_worker.as_deref()), (Status::Assigned, Some("gw211")));

    // 街镇呼叫: the grid worker cannot solve it and calls the street.
    let escalate =
        Command::Escalate { reason: "污水来自小区外商户，社区无法处理".into() };
    let c = run.step(3 * HOUR, "gw211", escalate, &["CaseEscalated"]).await;
    assert_eq!((c.status, c.level), (Status::Escalated, Level::Street));
    assert_eq!(units(&c), vec![(S2, true, true, false)]);

    // 街道派单: the street dispatches to the police...
    let to_police =
        Command::Dispatch {
            departments: vec![D02.into()], lead: None, note: "请核查商户".into()
        };
    let c = run.step(4 * HOUR, "ss2", to_police, &["CaseDispatched"]).await;
    assert_eq!((c.status, c.level), (Status::Dispatched, Level::Department));
    assert_eq!(units(&c), vec![(D02, true, false, false)]);

    // 退单: ...who return it as not their responsibility.
    let ret = Command::Return { reason: "排污不属于公安职责".into() };
    let c = run.step(5 * HOUR, "d02a", ret, &["CaseReturned"]).await;
    assert_eq!((c.status, c.level, c.return_count), (Status::Escalated, Level::Street, 1));
    assert_eq!(units(&c), vec![(S2, true, true, false)]);

    // Re-dispatch to joint handling: environment leads, urban management joins.
    let joint = Command::Dispatch {
        departments: vec![D04.into(), D01.into()],
        lead: Some(D04.into()),
        note: "生态环境局牵头，城管配合".into(),
    };
    let c = run.step(6 * HOUR, "ss2", joint, &["CaseDispatched"]).await;
    assert_eq!(c.status, Status::Dispatched);
    assert_eq!(units(&c), vec![(D04, true, false, false), (D01, false, false, false)]);

    // 单位领单: both claim.
    run.step(7 * HOUR, "d04a", Command::Claim, &["CaseClaimed"]).await;
    let c = run.step(7 * HOUR, "d01b", Command::Claim, &["CaseClaimed"]).await;
    assert_eq!(units(&c), vec![(D04, true, true, false), (D01, false, true, false)]);

    // 协同整治: urban management finishes its part first; the case is resolved when the lead does.
    let c = run
        .step(
            2 * DAY,
            "d01b",
            Command::Resolve { note: "已封堵违规排水口".into() },
            &["CaseResolved"],
        )
        .await;
    assert_eq!(c.status, Status::Dispatched);
    let c = run
        .step(
            3 * DAY,
            "d04a",
            Command::Resolve { note: "已责令商户整改并罚款".into() },
            &["CaseResolved"],
        )
        .await;
    assert_eq!((c.status, c.resolved_at), (Status::Resolved, Some(at(3 * DAY))));
    assert_eq!(c.last_resolvers, vec![D04.to_string(), D01.to_string()]);

    // 回访: the resident is not satisfied: it still smells.
    let unhappy = Command::Callback {
        satisfaction: Satisfaction::Unsatisfied,
        solved: false,
        note: "仍有异味".into(),
    };
    let c = run.step(4 * DAY, "cs21", unhappy, &["CallbackRecorded"]).await;
    assert_eq!(c.status, Status::Resolved);

    // 重办: reopened, back to both departments.
    let c = run
        .step(
            4 * DAY,
            "cs21",
            Command::Reopen { reason: "居民反映仍有异味".into() },
            &["CaseReopened"],
        )
        .await;
    assert_eq!((c.status, c.level, c.reopen_count), (Status::Dispatched, Level::Department, 1));
    assert_eq!(units(&c), vec![(D04, true, true, false), (D01, false, true, false)]);
    assert_eq!(c.resolution_due, at(4 * DAY + 15 * DAY), "a fresh complex-class limit");

    // Resolved again, both parts.
    run.step(
        5 * DAY,
        "d04a",
        Command::Resolve { note: "疏通管道并除臭".into() },
        &["CaseResolved"],
    )
    .await;
    let c = run
        .step(
            5 * DAY,
            "d01a",
            Command::Resolve { note: "复查无违规排放".into() },
            &["CaseResolved"],
        )
        .await;
    assert_eq!(c.status, Status::Resolved);

    // The hotline calls back: satisfied; the community closes.
    let happy = Command::Callback {
        satisfaction: Satisfaction::Satisfied,
        solved: true,
        note: "问题已解决".into(),
    };
    run.step(6 * DAY, "sup", happy, &["CallbackRecorded"]).await;
    let c =
        run.step(6 * DAY, "cs21", Command::Close { note: "办结".into() }, &["CaseClosed"]).await;
    assert_eq!((c.status, c.closed_at), (Status::Closed, Some(at(6 * DAY))));
    assert!(!c.is_open() && c.left_community && c.responded_at == Some(at(HOUR)));

    // The whole chain, and nothing left for the deadlines to do.
    assert_eq!(run.types.len(), 16);
    let h = &run.h;
    assert_eq!(h.engine.tick(at(60 * DAY)).await.unwrap().events, 0);
    // After a restart the closed case is rebuilt from the log, identical.
    let live = h.engine.case(&case_id(&run.id)).await.unwrap();
    let id = run.id.clone();
    let h = run.h.reopen().await;
    assert_eq!(h.engine.case(&case_id(&id)).await.unwrap(), live);
}

/// Joint handling led by the department named second: a reopen must send
/// the case back with the same lead.
#[test]
fn a_reopen_keeps_the_lead_department() {
    let s = Story::submit(OTHER_RESIDENT, submission("sewage", G211))
        .by("cs21", Command::Escalate { reason: "社区无法处理".into() })
        .by(
            "ss2",
            Command::Dispatch {
                departments: vec![D01.into(), D04.into()],
                lead: Some(D04.into()),
                note: String::new(),
            },
        )
        .by("d01a", Command::Claim)
        .by("d04a", Command::Claim);
    assert!(s.case().holder(D04).unwrap().lead);
    let s = s
        .by("d01a", Command::Resolve { note: "配合完成".into() })
        .by("d04a", Command::Resolve { note: "牵头完成".into() })
        .by(
            "cs21",
            Command::Callback {
                satisfaction: Satisfaction::Unsatisfied,
                solved: false,
                note: String::new(),
            },
        )
        .by("cs21", Command::Reopen { reason: "仍有异味".into() });
    let c = s.case();
    let leads: Vec<&str> = c.holders.iter().filter(|h| h.lead).map(|h| h.unit.as_str()).collect();
    assert_eq!(leads, vec![D04], "the lead after the reopen: {:?}", c.holders);
}
