//! Open311 GeoReport v2 in JSON and XML, checked against the spec's field lists.

use std::collections::BTreeSet;

use quick_xml::events::Event as XmlEvent;
use serde_json::{json, Value};

use crate::common::*;

/// The spec's fields of a service (GET services).
const SERVICE_FIELDS: &[&str] =
    &["service_code", "service_name", "description", "metadata", "type", "keywords", "group"];
/// The spec's fields of a service request (GET requests, GET request).
const REQUEST_FIELDS: &[&str] = &[
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];
/// The spec's fields of a POST answer.
const POSTED_FIELDS: &[&str] = &["service_request_id", "token", "service_notice", "account_id"];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

/// (root element, names of the children of each item element) of an XML list document.
fn xml_items(text: &str, item: &str) -> (String, Vec<BTreeSet<String>>) {
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"), "{text}");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut root = String::new();
    let mut items = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            XmlEvent::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                depth += 1;
                if depth == 1 {
                    root = name;
                } else if depth == 2 {
                    assert_eq!(name, item);
                    items.push(BTreeSet::new());
                } else if depth == 3 {
                    items.last_mut().unwrap().insert(name);
                }
            }
            XmlEvent::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if depth == 2 {
                    items.last_mut().unwrap().insert(name);
                }
            }
            XmlEvent::End(_) => depth -= 1,
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    (root, items)
}

async fn form(
    t: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = t
        .client
        .post(format!("{}{path}", t.base))
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    t.send(req.body(serde_urlencoded::to_string(fields).unwrap())).await
}

#[tokio::test]
async fn services_and_definitions_in_json_and_xml() {
    let t = TestServer::start().await;
    let r = t.get(None, "/open311/v2/services.json").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let list = r.json();
    let services = list.as_array().unwrap();
    assert_eq!(services.len(), 7);
    for s in services {
        assert_eq!(keys(s), set(SERVICE_FIELDS));
        assert_eq!(s["type"], "realtime");
        // Every service takes the kind and priority attributes.
        assert_eq!(s["metadata"], true);
    }
    let light = services.iter().find(|s| s["service_code"] == "street_light").unwrap();
    assert_eq!(light["service_name"], "路灯不亮");
    assert_eq!(light["group"], "城市管理局");

    let x = t.get(None, "/open311/v2/services.xml?jurisdiction_id=320902").await;
    assert_eq!(x.status, 200);
    assert!(x.header("content-type").unwrap().starts_with("text/xml"));
    let (root, items) = xml_items(&x.text, "service");
    assert_eq!(root, "services");
    assert_eq!(items.len(), 7);
    assert!(items.iter().all(|i| *i == set(SERVICE_FIELDS)));
    assert!(x.text.contains("<service_name>路灯不亮</service_name>"));

    let d = t.get(None, "/open311/v2/services/street_light.json").await.json();
    assert_eq!(d["service_code"], "street_light");
    assert_eq!(d["attributes"][0]["code"], "kind");
    let dx = t.get(None, "/open311/v2/services/street_light.xml").await;
    assert!(dx.text.contains("<service_definition><attributes><attribute>"), "{}", dx.text);

    // Unknown code and jurisdiction: 404 with the spec's error list, in the resource's format.
    let e = t.get(None, "/open311/v2/services/pothole.json").await;
    assert_eq!(e.status, 404);
    assert_eq!(e.json()[0]["code"], 404);
    assert!(e.json()[0]["description"].as_str().unwrap().contains("pothole"));
    let ex = t.get(None, "/open311/v2/services.xml?jurisdiction_id=sfgov.org").await;
    assert_eq!(ex.status, 404);
    let (root, items) = xml_items(&ex.text, "error");
    assert_eq!(root, "errors");
    assert_eq!(items[0], set(&["code", "description"]));
    assert_eq!(t.get(None, "/open311/v2/services/street_light.csv").await.status, 404);
    assert_eq!(t.get(None, "/open311/v2/services.json?colour=red").await.status, 200);

    let disc = t.get(None, "/open311/v2/discovery.json").await.json();
    assert_eq!(disc["endpoints"][0]["specification"], "http://wiki.open311.org/GeoReport_v2");
    assert!(disc["endpoints"][0]["formats"].as_array().unwrap().contains(&json!("text/xml")));
    let dx = t.get(None, "/open311/v2/discovery.xml").await;
    assert!(
        dx.text.contains(
            "<formats><format>text/xml</format><format>application/json</format></formats>"
        ),
        "{}",
        dx.text
    );
    t.stop().await;
}

#[tokio::test]
async fn requests_are_posted_listed_and_read_in_both_formats() {
    let t = TestServer::start().await;
    let key = t.key(RESIDENT).to_string();
    let fields: &[(&str, &str)] = &[
        ("api_key", &key),
        ("jurisdiction_id", "320902"),
        ("service_code", "street_light"),
        ("address_string", "新村社区第一网格 东门"),
        ("lat", "33.38"),
        ("long", "120.16"),
        ("first_name", "四"),
        ("last_name", "李"),
        ("phone", "13800000001"),
        ("description", "路灯不亮"),
        ("attribute[priority]", "urgent"),
    ];
    let posted =
        form(&t, "/open311/v2/requests.json", fields, &[("idempotency-key", "app-req-1")]).await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let answer = posted.json();
    assert_eq!(keys(&answer[0]), set(POSTED_FIELDS));
    let id = answer[0]["service_request_id"].as_str().unwrap().to_string();
    assert!(answer[0]["service_notice"].as_str().unwrap().contains("新村社区"));

    let px = form(
        &t,
        "/open311/v2/requests.xml",
        &[("api_key", &key), ("service_code", "noise"), ("address_id", "32090200100100102")],
        &[],
    )
    .await;
    assert_eq!(px.status, 200, "{}", px.text);
    let (root, items) = xml_items(&px.text, "request");
    assert_eq!(root, "service_requests");
    assert_eq!(items[0], set(POSTED_FIELDS));

    // Every POST answers with a token; the lookup needs only jurisdiction_id.
    let token = answer[0]["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    for q in ["", "?jurisdiction_id=320902"] {
        let tok = t.get(None, &format!("/open311/v2/tokens/{token}.json{q}")).await;
        assert_eq!(tok.status, 200, "{}", tok.text);
        assert_eq!(tok.json()[0]["service_request_id"], id.as_str());
        assert_eq!(tok.json()[0]["token"], token.as_str());
    }
    let tx = t.get(None, &format!("/open311/v2/tokens/{token}.xml")).await;
    assert_eq!(xml_items(&tx.text, "request").1[0], set(&["service_request_id", "token"]));
    // The XML POST (no Idempotency-Key) got its own, random token.
    let xml_token = px.text.split("<token>").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(xml_token.len(), 32);
    assert_ne!(xml_token, token);
    // Unknown tokens, the old form (the Idempotency-Key itself) and a foreign jurisdiction: 404.
    for bad in [
        "00000000000000000000000000000000.json".to_string(),
        "app-req-1.json".to_string(),
        format!("{token}.json?jurisdiction_id=sfgov.org"),
    ] {
        let r = t.get(None, &format!("/open311/v2/tokens/{bad}")).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.text);
        assert_eq!(r.json()[0]["code"], 404);
    }
    // A retry with the same Idempotency-Key: the same id and the same token.
    let again =
        form(&t, "/open311/v2/requests.json", fields, &[("idempotency-key", "app-req-1")]).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()[0]["service_request_id"], id.as_str());
    assert_eq!(again.json()[0]["token"], token.as_str());

    // Move it along so that one request is closed.
    t.ok("cs11", &id, "resolve", json!({"note": "已修复"})).await;

    let list = t.get(None, "/open311/v2/requests.json").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    for r in list.as_array().unwrap() {
        assert_eq!(keys(r), set(REQUEST_FIELDS));
    }
    let mine =
        list.as_array().unwrap().iter().find(|r| r["service_request_id"] == id.as_str()).unwrap();
    // The posted point is kept and returned; the request posted without one has none.
    assert_eq!((mine["lat"].as_f64(), mine["long"].as_f64()), (Some(33.38), Some(120.16)));
    let other =
        list.as_array().unwrap().iter().find(|r| r["service_request_id"] != id.as_str()).unwrap();
    assert!(other["lat"].is_null() && other["long"].is_null() && other["media_url"].is_null());
    assert_eq!(mine["status"], "closed");
    assert!(mine["status_notes"].as_str().unwrap().starts_with("resolved by"));
    assert_eq!(mine["service_code"], "street_light");
    assert_eq!(mine["address"], "新村社区第一网格 东门");
    assert_eq!(mine["address_id"], G111);
    assert_eq!(mine["agency_responsible"], "新村社区");
    // Datetimes: the district's offset, whole seconds.
    for field in ["requested_datetime", "updated_datetime", "expected_datetime"] {
        let v = mine[field].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).is_ok(),
            "{v}"
        );
        assert_eq!(v.len(), "2026-03-03T16:00:00+08:00".len(), "{field}: {v}");
        assert!(v.ends_with("+08:00"), "{field}: {v}");
    }

    let x = t.get(None, "/open311/v2/requests.xml").await;
    let (root, items) = xml_items(&x.text, "request");
    assert_eq!(root, "service_requests");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| *i == set(REQUEST_FIELDS)), "{:?}", items);

    // Filters.
    let open = t.get(None, "/open311/v2/requests.json?status=open").await.json();
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["service_code"], "noise");
    let by_code = t
        .get(None, "/open311/v2/requests.json?service_code=street_light,noise&status=open,closed")
        .await
        .json();
    assert_eq!(by_code.as_array().unwrap().len(), 2);
    let by_id = t
        .get(
            None,
            &format!("/open311/v2/requests.json?service_request_id={id},GC9999999&status=open"),
        )
        .await
        .json();
    assert_eq!(by_id.as_array().unwrap().len(), 1, "ids override the other filters");
    let page = t.get(None, "/open311/v2/requests.json?page_size=1&page=2").await.json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    let old = t.get(None, "/open311/v2/requests.json?start_date=2020-01-01T00:00:00Z&end_date=2020-02-01T00:00:00Z").await.json();
    assert_eq!(old.as_array().unwrap().len(), 0);
    let empty_is_absent =
        t.get(None, "/open311/v2/requests.json?status=&service_code=").await.json();
    assert_eq!(empty_is_absent.as_array().unwrap().len(), 2);
    for bad in [
        "start_date=2020-01-01T00:00:00Z&end_date=2020-06-01T00:00:00Z",
        "start_date=last-tuesday",
        "status=pending",
        "service_code=pothole",
        "page_size=5000",
        "extensions=maybe",
    ] {
        let r = t.get(None, &format!("/open311/v2/requests.json?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.json()[0]["code"], 400);
    }

    // One request, with extensions (history as notes).
    let one = t.get(None, &format!("/open311/v2/requests/{id}.json?extensions=true")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    let one = one.json();
    assert_eq!(one[0]["extended_attributes"]["gridcase_status"], "resolved");
    assert_eq!(one[0]["extended_attributes"]["priority"], "urgent");
    let notes = one[0]["notes"].as_array().unwrap();
    // Submitted, its details (the point), resolved.
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert_eq!(notes[0]["type"], "opened");
    assert!(notes[1]["summary"].as_str().unwrap().starts_with("reported at"), "{notes:?}");
    assert!(notes[2]["datetime"].as_str().unwrap().ends_with("+08:00"));
    let ox = t.get(None, &format!("/open311/v2/requests/{id}.xml")).await;
    let (_, items) = xml_items(&ox.text, "request");
    assert_eq!(items[0], set(REQUEST_FIELDS));
    assert_eq!(t.get(None, "/open311/v2/requests/GC9999999.json").await.status, 404);
    t.stop().await;
}

#[tokio::test]
async fn bad_posts_are_refused_the_open311_way_and_append_nothing() {
    let t = TestServer::start().await;
    let key = t.key(RESIDENT).to_string();
    let head = t.head().await;
    let cases: Vec<(u16, Vec<(&str, &str)>)> = vec![
        (403, vec![("service_code", "noise"), ("address_id", G111)]),
        (403, vec![("api_key", "gck_unknown"), ("service_code", "noise"), ("address_id", G111)]),
        (400, vec![("api_key", &key), ("address_id", G111)]),
        (404, vec![("api_key", &key), ("service_code", "pothole"), ("address_id", G111)]),
        (
            404,
            vec![
                ("api_key", &key),
                ("jurisdiction_id", "sfgov.org"),
                ("service_code", "noise"),
                ("address_id", G111),
            ],
        ),
        // lat without long.
        (400, vec![("api_key", &key), ("service_code", "noise"), ("lat", "33.3")]),
        // No location at all.
        (400, vec![("api_key", &key), ("service_code", "noise"), ("description", "x")]),
        (
            400,
            vec![
                ("api_key", &key),
                ("service_code", "noise"),
                ("address_string", "nowhere at all"),
            ],
        ),
        (
            400,
            vec![
                ("api_key", &key),
                ("service_code", "noise"),
                ("address_id", G111),
                ("lat", "999"),
                ("long", "1"),
            ],
        ),
        (
            400,
            vec![
                ("api_key", &key),
                ("service_code", "noise"),
                ("address_id", G111),
                ("attribute[kind]", "gossip"),
            ],
        ),
        (
            400,
            vec![
                ("api_key", &key),
                ("service_code", "noise"),
                ("address_id", G111),
                ("media_url", "javascript:alert(1)"),
            ],
        ),
        (403, vec![("api_key", t.key("aud")), ("service_code", "noise"), ("address_id", G111)]),
    ];
    for (status, fields) in &cases {
        for format in ["json", "xml"] {
            let r = form(&t, &format!("/open311/v2/requests.{format}"), fields, &[]).await;
            assert_eq!(r.status, *status, "{fields:?} {format}: {}", r.text);
            if format == "json" {
                assert_eq!(r.json()[0]["code"], *status);
            } else {
                assert!(
                    r.text.contains(&format!("<errors><error><code>{status}</code>")),
                    "{}",
                    r.text
                );
            }
        }
    }
    let wrong_type = t
        .send(
            t.client
                .post(format!("{}/open311/v2/requests.json", t.base))
                .json(&json!({"api_key": key})),
        )
        .await;
    assert_eq!(wrong_type.status, 400);
    let repeated = t
        .send(
            t.client
                .post(format!("{}/open311/v2/requests.json", t.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "api_key={key}&service_code=noise&service_code=noise&address_id={G111}"
                )),
        )
        .await;
    assert_eq!(repeated.status, 400);
    assert_eq!(t.head().await, head, "nothing appended");
    t.stop().await;
}

/// A multipart body: text fields, then an optional file part.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----gridcase-test-7d1f3a";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, content_type, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"photo.jpg\"\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A tiny but real PNG (1x1, grey).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3A, 0x7E, 0x9B,
    0x55, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x68, 0x00, 0x00, 0x00,
    0x82, 0x00, 0x81, 0x4C, 0x17, 0xD7, 0xDF, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// What a published GeoReport v2 client does: a form POST with the key
/// and the jurisdiction in the query string and parameters of its own in
/// both, then the token lookup with only the jurisdiction, then the
/// listing and the request with extension parameters.
#[tokio::test]
async fn a_client_written_like_the_published_ones_works_end_to_end() {
    let t = TestServer::start().await;
    let key = t.key(RESIDENT).to_string();
    let head = t.head().await;
    let posted = t
        .send(
            t.client
                .post(format!(
                    "{}/open311/v2/requests.json?api_key={key}&jurisdiction_id=320902&client_version=4.2",
                    t.base
                ))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    serde_urlencoded::to_string([
                        ("service_code", "street_light"),
                        ("address_string", "新村社区第一网格 东门"),
                        ("lat", "33.3800000"),
                        ("long", "120.1600000"),
                        ("email", "li4@example.org"),
                        ("device_id", "ios-5F2C"),
                        ("account_id", "acct-77"),
                        ("first_name", "四"),
                        ("last_name", "李"),
                        ("phone", "13800000001"),
                        ("description", "路灯不亮"),
                        ("attribute[priority]", "urgent"),
                        ("attribute[photo_angle]", "north"),
                        ("app_build", "2026.11.3"),
                    ])
                    .unwrap(),
                ),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let answer = posted.json();
    assert_eq!(keys(&answer[0]), set(POSTED_FIELDS));
    assert_eq!(answer[0]["account_id"], "acct-77", "the posted account_id comes back");
    assert!(answer[0]["service_notice"].as_str().unwrap().contains("+08:00"));
    let id = answer[0]["service_request_id"].as_str().unwrap().to_string();
    let token = answer[0]["token"].as_str().unwrap().to_string();

    let tok =
        t.get(None, &format!("/open311/v2/tokens/{token}.json?jurisdiction_id=320902&x=1")).await;
    assert_eq!(tok.status, 200, "{}", tok.text);
    assert_eq!(tok.json()[0]["service_request_id"], id.as_str());

    let list = t
        .get(None, &format!("/open311/v2/requests.json?jurisdiction_id=320902&service_request_id={id}&sort=newest&lang=zh"))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let r = &list.json()[0];
    assert_eq!(keys(r), set(REQUEST_FIELDS), "personal details are never listed");
    assert_eq!((r["lat"].as_f64(), r["long"].as_f64()), (Some(33.38), Some(120.16)));
    assert_eq!(r["address"], "新村社区第一网格 东门");
    assert_eq!(r["address_id"], G111);
    for field in ["requested_datetime", "updated_datetime", "expected_datetime"] {
        let v = r[field].as_str().unwrap();
        assert!(v.ends_with("+08:00") && !v.contains('.'), "{field}: {v}");
    }
    let one =
        t.get(None, &format!("/open311/v2/requests/{id}.xml?jurisdiction_id=320902&foo=bar")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert!(one.text.contains("<lat>33.38</lat><long>120.16</long>"), "{}", one.text);

    // The reporter's details are in the log (Open311 never lists them: the
    // field sets above are the spec's).
    let history = t
        .server()
        .state()
        .engine
        .history(&gridcase_engine::domain::CaseId::new(id.clone()).unwrap())
        .await
        .unwrap();
    let reporter = history
        .iter()
        .find_map(|(e, _)| match e {
            gridcase_engine::domain::Event::SubmissionDetailed { reporter, .. } => reporter.clone(),
            _ => None,
        })
        .expect("a SubmissionDetailed event with the reporter");
    assert_eq!(reporter.email.as_deref(), Some("li4@example.org"));
    assert_eq!(reporter.device_id.as_deref(), Some("ios-5F2C"));
    assert_eq!(reporter.account_id.as_deref(), Some("acct-77"));
    assert_eq!(
        (reporter.first_name.as_deref(), reporter.last_name.as_deref()),
        (Some("四"), Some("李"))
    );
    assert!(t.head().await.0 > head.0);
    t.stop().await;
}

/// A multipart POST with a photo: the file is kept by its hash and served
/// back, byte for byte, at the request's media_url; what is not an image,
/// or too large, is refused and appends nothing.
#[tokio::test]
async fn a_multipart_photo_is_stored_and_served_back_as_media_url() {
    let t = TestServer::start_with(|o| o.media_max_bytes = 1024).await;
    let key = t.key(RESIDENT).to_string();
    let post = |ct: String, body: Vec<u8>| {
        t.client
            .post(format!("{}/open311/v2/requests.json", t.base))
            .header("content-type", ct)
            .body(body)
    };
    let fields = [
        ("api_key", key.as_str()),
        ("service_code", "street_light"),
        ("address_id", G111),
        ("extra", "ignored"),
    ];
    // The client calls it a JPEG; the bytes say PNG, and the bytes decide.
    let (ct, body) = multipart(&fields, Some(("media", "image/jpeg", PNG)));
    let r = t.send(post(ct, body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()[0]["service_request_id"].as_str().unwrap().to_string();
    let one = t.get(None, &format!("/open311/v2/requests/{id}.json")).await.json();
    let url = one[0]["media_url"].as_str().unwrap().to_string();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(PNG).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(url, format!("{}/open311/v2/media/{sha}", t.base));
    let served = t.client.get(&url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let listed = t.get(None, "/open311/v2/requests.json").await.json();
    assert_eq!(listed[0]["media_url"], url.as_str());

    let head = t.head().await;
    let refused: Vec<(u16, (String, Vec<u8>))> = vec![
        (400, multipart(&fields, Some(("media", "image/png", b"<svg onload=alert(1)>")))),
        (413, multipart(&fields, Some(("media", "image/png", &[PNG, &[0u8; 2048]].concat())))),
        (
            403,
            multipart(
                &[("service_code", "noise"), ("address_id", G111)],
                Some(("media", "image/png", PNG)),
            ),
        ),
        (400, ("multipart/form-data; boundary=nothing".to_string(), b"garbage".to_vec())),
    ];
    for (status, (ct, body)) in refused {
        let r = t.send(post(ct, body)).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.json()[0]["code"], status);
    }
    assert_eq!(t.head().await, head, "refused uploads append nothing");
    for bad in ["0".repeat(64), "..%2F..%2Fapi_keys.toml".to_string(), sha.to_uppercase()] {
        let r = t.get(None, &format!("/open311/v2/media/{bad}")).await;
        assert_eq!(r.status, 404, "{bad}");
    }
    t.stop().await;
}

/// Every resource's datetimes: the district's offset, whole seconds;
/// discovery's changeset is when the organisation last changed.
#[tokio::test]
async fn datetimes_are_w3_in_the_districts_offset_on_every_resource() {
    let t = TestServer::start().await;
    let id = t.submit(RESIDENT, G111).await;
    let parse = |v: &str| {
        assert!(v.ends_with("+08:00") && v.len() == 25, "{v}");
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    let disc = t.get(None, "/open311/v2/discovery.json").await.json();
    let changed = parse(disc["changeset"].as_str().unwrap());
    assert_eq!(disc["endpoints"][0]["changeset"], disc["changeset"]);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        changed <= now && now - changed < time::Duration::minutes(10),
        "the org was loaded just now"
    );
    let r = t.get(None, &format!("/open311/v2/requests/{id}.json?extensions=true")).await.json();
    for field in ["requested_datetime", "updated_datetime", "expected_datetime"] {
        parse(r[0][field].as_str().unwrap());
    }
    for note in r[0]["notes"].as_array().unwrap() {
        parse(note["datetime"].as_str().unwrap());
    }
    // Filters take any offset; the same instant in UTC and in +08:00 select alike.
    let submitted = parse(r[0]["requested_datetime"].as_str().unwrap());
    let utc = submitted
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for start in
        [utc.replace('+', "%2B"), r[0]["requested_datetime"].as_str().unwrap().replace('+', "%2B")]
    {
        let l = t.get(None, &format!("/open311/v2/requests.json?start_date={start}")).await;
        assert_eq!(l.status, 200, "{}", l.text);
        assert_eq!(l.json().as_array().unwrap().len(), 1, "{start}");
    }
    t.stop().await;
}

/// An app that knows only the phone's GPS fix: `lat` and `long` alone place
/// the request in its micro-grid, and GET returns them.
#[tokio::test]
async fn lat_and_long_alone_place_a_request_in_its_micro_grid() {
    let t = TestServer::start().await;
    let key = t.key(RESIDENT).to_string();
    // The fixture's boundaries: 0.001° squares eastwards from 120.16°E;
    // the second is 32090200100100102.
    let posted = form(
        &t,
        "/open311/v2/requests.json",
        &[("api_key", &key), ("service_code", "noise"), ("lat", "33.3905"), ("long", "120.1615")],
        &[],
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let id = posted.json()[0]["service_request_id"].as_str().unwrap().to_string();
    let got = t.get(None, &format!("/open311/v2/requests/{id}.json")).await.json();
    assert_eq!(got[0]["address_id"], "32090200100100102");
    assert_eq!((got[0]["lat"].as_f64(), got[0]["long"].as_f64()), (Some(33.3905), Some(120.1615)));
    assert_eq!(got[0]["address"], "33.3905000,120.1615000");
    let native = t.get(Some("sup"), &format!("/api/v1/cases/{id}")).await.json();
    assert_eq!(native["located_by"], "point");
    // Outside every micro-grid: 400, naming the nearest one and how far.
    let far = form(
        &t,
        "/open311/v2/requests.json",
        &[("api_key", &key), ("service_code", "noise"), ("lat", "33.3905"), ("long", "120.20")],
        &[],
    )
    .await;
    assert_eq!(far.status, 400, "{}", far.text);
    let why = far.json()[0]["description"].as_str().unwrap().to_string();
    assert!(why.contains("nearest") && why.contains("m away"), "{why}");
    t.stop().await;
}

/// A posted `media_url` (a photo the client keeps elsewhere) is stored as
/// a link and returned as the request's `media_url`, not folded into the
/// description; it is never fetched.
#[tokio::test]
async fn a_posted_media_url_is_kept_and_returned() {
    let t = TestServer::start().await;
    let key = t.key(RESIDENT).to_string();
    let link = "https://photos.example.cn/lamp/1.jpg";
    let posted = form(
        &t,
        "/open311/v2/requests.json",
        &[
            ("api_key", &key),
            ("service_code", "noise"),
            ("address_id", G111),
            ("description", "楼上装修噪音"),
            ("media_url", link),
        ],
        &[],
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let id = posted.json()[0]["service_request_id"].as_str().unwrap().to_string();
    let got = t.get(None, &format!("/open311/v2/requests/{id}.json")).await.json();
    assert_eq!(got[0]["media_url"], link);
    assert_eq!(got[0]["description"], "楼上装修噪音");
    let xml = t.get(None, &format!("/open311/v2/requests/{id}.xml")).await.text;
    assert!(xml.contains(&format!("<media_url>{link}</media_url>")), "{xml}");
    t.stop().await;
}
