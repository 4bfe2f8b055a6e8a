//! What a submission carries beyond the original `CaseSubmitted`: the
//! reported point, how the location was resolved, media references and the
//! reporter's details, written as `SubmissionDetailed` in the same append.

use gridcase::engine::domain::{
    Command, Event, LocationSource, MediaRef, Reporter, Rule, Status, Submission,
};
use gridcase::engine::geo::GeoPoint;

use super::fixture::*;

const SHA: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";

fn photo() -> MediaRef {
    MediaRef { sha256: SHA.into(), content_type: "Image/JPEG".into(), size: 204_800, url: None }
}

fn reporter() -> Reporter {
    Reporter {
        device_id: Some(" dev-1 ".into()),
        account_id: Some("".into()),
        email: Some("li@example.cn".into()),
        first_name: Some("娜".into()),
        last_name: Some("李".into()),
    }
}

fn with_extras() -> Submission {
    let mut s = street_light();
    s.point = Some(GeoPoint::new(33.39, 120.16).unwrap());
    s.media = vec![photo()];
    s.reporter = Some(reporter());
    s
}

#[test]
fn a_plain_submission_is_one_case_submitted_as_before() {
    let events = given_no_case().when(RESIDENT, Command::Submit(street_light())).then_accept();
    assert!(matches!(events.as_slice(), [Event::CaseSubmitted { .. }]), "{events:?}");
    let case = given_no_case()
        .when(RESIDENT, Command::Submit(street_light()))
        .then_expect_events(events)
        .unwrap();
    // What CaseSubmitted alone implies: an address, no point, no media.
    assert_eq!(case.located_by, LocationSource::Address);
    assert_eq!((case.point, case.media.len(), case.reporter.clone()), (None, 0, None));
    let by_code = given_no_case()
        .when(RESIDENT, Command::Submit(submission("street_light", G111)))
        .then_accept();
    let case = fold_new(&by_code);
    assert_eq!(case.located_by, LocationSource::Code);
}

fn fold_new(events: &[Event]) -> gridcase::engine::domain::Case {
    let mut case = gridcase::engine::domain::Case::start(&events[0], RESIDENT, t0()).unwrap();
    for e in &events[1..] {
        case.apply(e, t0());
    }
    case
}

#[test]
fn extras_follow_in_a_details_event_normalised_and_fold_into_the_case() {
    let events = given_no_case().when(RESIDENT, Command::Submit(with_extras())).then_accept();
    let [Event::CaseSubmitted { grid, location, .. }, Event::SubmissionDetailed { located_by, point, media, reporter }] =
        events.as_slice()
    else {
        panic!("expected CaseSubmitted then SubmissionDetailed, got {events:?}");
    };
    // The fixture organisation has no boundaries: the address places the
    // case and the point is kept as reported.
    assert_eq!(*located_by, LocationSource::Address);
    assert_eq!(grid, G111);
    assert_eq!(location, "新村社区第一网格2号楼");
    assert_eq!(*point, Some(GeoPoint::new(33.39, 120.16).unwrap()));
    assert_eq!(media[0].sha256, SHA.to_ascii_lowercase());
    assert_eq!(media[0].content_type, "image/jpeg");
    let r = reporter.as_ref().unwrap();
    assert_eq!((r.device_id.as_deref(), r.account_id.as_deref()), (Some("dev-1"), None));
    let case = fold_new(&events);
    assert_eq!(case.version, 2);
    assert_eq!(case.status, Status::Submitted);
    assert_eq!(case.point, *point);
    assert_eq!(&case.media, media);
    assert_eq!(case.reporter.as_ref(), Some(r));
}

#[test]
fn malformed_media_and_reporter_details_are_refused() {
    let refuse = |s: Submission| {
        given_no_case()
            .when(RESIDENT, Command::Submit(s))
            .then_expect_rejection(Rule::InvalidArgument)
    };
    for (sha, ct) in [
        ("abc", "image/jpeg"),
        (&"g".repeat(64)[..], "image/jpeg"),
        (SHA, "jpeg"),
        (SHA, "image/ jpeg"),
        (SHA, "/"),
    ] {
        let mut s = street_light();
        s.media =
            vec![MediaRef { sha256: sha.into(), content_type: ct.into(), size: 1, url: None }];
        refuse(s);
    }
    // A link: http(s), short, nothing else set.
    for bad in [
        MediaRef::link("ftp://example.cn/a.jpg"),
        MediaRef::link("javascript:alert(1)"),
        MediaRef::link(format!("https://example.cn/{}", "a".repeat(2100))),
        MediaRef::link("https://example.cn/a b.jpg"),
        MediaRef { sha256: SHA.into(), ..MediaRef::link("https://example.cn/a.jpg") },
    ] {
        let mut s = street_light();
        s.media = vec![bad];
        refuse(s);
    }
    let mut s = street_light();
    s.media = vec![photo(); 17];
    refuse(s);
    for bad in [
        Reporter { email: Some("not-an-address".into()), ..Reporter::default() },
        Reporter { email: Some("li @example.cn".into()), ..Reporter::default() },
        Reporter { first_name: Some("x".repeat(129)), ..Reporter::default() },
        Reporter { device_id: Some("a\u{0}b".into()), ..Reporter::default() },
    ] {
        let mut s = street_light();
        s.reporter = Some(bad);
        refuse(s);
    }
    // All-empty details store nothing: no details event at all.
    let mut s = street_light();
    s.reporter = Some(Reporter { email: Some("  ".into()), ..Reporter::default() });
    let events = given_no_case().when(RESIDENT, Command::Submit(s)).then_accept();
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn a_submission_needs_a_location_or_a_point_it_can_place() {
    let mut s = street_light();
    s.location = "  ".into();
    let r = given_no_case()
        .when(RESIDENT, Command::Submit(s.clone()))
        .then_expect_rejection(Rule::InvalidArgument);
    assert!(r.detail.contains("point"), "{r}");
    // A point alone, in an organisation without boundaries.
    s.point = Some(GeoPoint::new(33.39, 120.16).unwrap());
    let r = given_no_case()
        .when(RESIDENT, Command::Submit(s))
        .then_expect_rejection(Rule::InvalidArgument);
    assert!(r.detail.contains("no micro-grid boundaries"), "{r}");
}

#[tokio::test]
async fn extras_survive_the_store_and_a_restart() {
    let h = TestEngine::start().await;
    let id = h.submit(RESIDENT, with_extras()).await;
    assert_eq!(h.event_types(&id).await, ["CaseSubmitted", "SubmissionDetailed"]);
    let live = h.folded(&id).await;
    let h = h.reopen().await;
    let again = h.folded(&id).await;
    assert_eq!(live, again);
    assert_eq!(
        again.media,
        vec![MediaRef {
            sha256: SHA.to_ascii_lowercase(),
            content_type: "image/jpeg".into(),
            size: 204_800,
            url: None,
        }]
    );
    assert_eq!(again.version, 2);
    // The case goes on as any other.
    h.ok(&id, "cs11", Command::Assign { worker: "gw111".into() }).await;
}
