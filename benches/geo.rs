//! Point → micro-grid lookup (criterion), on the generated Tinghu (1,976
//! micro-grids) and Chengdu-sized (23,600) organisations:
//!
//! - `locate/inside/{tinghu,chengdu}`: `Registry::locate` of a point inside
//!   a micro-grid (4,096 points drawn once, looked up in turn): the R-tree
//!   query plus `geo`'s point-in-polygon test of the candidates;
//! - `locate/border/chengdu`: a point on a corner shared by four
//!   micro-grids (the lowest code wins);
//! - `locate/outside/chengdu`: a point 1 km outside the city: the error
//!   path, which looks for the nearest micro-grid and its distance;
//! - `index/build/{tinghu,chengdu}`: building the index from the
//!   registry's boundaries (once per registry change);
//! - `address/{exact,contained}/tinghu`: the free-text address lookup the
//!   point replaces for apps, for comparison.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-geo cargo bench -p gridcase --bench geo`

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gridcase::engine::geo::{GeoIndex, GeoPoint};
use gridcase::engine::org::{OrgFile, Registry};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn registry(org: &OrgFile) -> Registry {
    let mut reg = Registry::default();
    for e in org.events().unwrap() {
        reg.apply(&e);
    }
    reg.reindex();
    reg
}

/// Points strictly inside random micro-grids: convex combinations of a
/// generated quadrilateral's corners with positive weights.
fn inside_points(reg: &Registry, n: usize) -> Vec<GeoPoint> {
    let quads: Vec<Vec<GeoPoint>> =
        reg.boundaries.values().map(|b| b.polygons().remove(0).remove(0)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..n)
        .map(|_| {
            let q = &quads[rng.random_range(0..quads.len())];
            let w: Vec<f64> = (0..4).map(|_| rng.random_range(0.05..1.0)).collect();
            let t: f64 = w.iter().sum();
            let lat = q.iter().zip(&w).map(|(p, w)| p.lat() * w / t).sum();
            let lon = q.iter().zip(&w).map(|(p, w)| p.lon() * w / t).sum();
            GeoPoint::new(lat, lon).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let tinghu = registry(&gridcase_sim::org::tinghu());
    let chengdu = registry(&gridcase_sim::org::chengdu());
    for (name, reg) in [("tinghu", &tinghu), ("chengdu", &chengdu)] {
        let points = inside_points(reg, 4096);
        // Every point lands: the bench measures the hit path.
        assert!(points.iter().all(|p| reg.locate(*p).is_ok()));
        let mut i = 0;
        c.bench_function(&format!("locate/inside/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % points.len();
                black_box(reg.locate(black_box(points[i])).unwrap().grid.len())
            })
        });
    }
    // The third corner of a micro-grid deep inside the city: shared by four.
    let corner = chengdu.boundaries.values().nth(10_000).unwrap().polygons()[0][0][2];
    c.bench_function("locate/border/chengdu", |b| {
        b.iter(|| black_box(chengdu.locate(black_box(corner)).unwrap().grid.len()))
    });
    let bounds = chengdu.bounds.unwrap();
    let outside = GeoPoint::new(bounds.max.lat() + 0.009, bounds.max.lon()).unwrap();
    assert!(chengdu.locate(outside).is_err());
    c.bench_function("locate/outside/chengdu", |b| {
        b.iter(|| black_box(chengdu.locate(black_box(outside)).is_err()))
    });
    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    for (name, reg) in [("tinghu", &tinghu), ("chengdu", &chengdu)] {
        g.bench_function(format!("build/{name}"), |b| {
            b.iter(|| black_box(GeoIndex::build(&reg.boundaries, &reg.units).len()))
        });
    }
    g.finish();
    // What an app would otherwise send: a registered address, exactly, or
    // inside longer free text.
    let some = tinghu.units.values().filter_map(|u| u.address.clone()).nth(1500).unwrap();
    let text = format!("盐城市亭湖区 {some} 东门口");
    c.bench_function("address/exact/tinghu", |b| {
        b.iter(|| black_box(tinghu.resolve_location(black_box(&some)).unwrap()))
    });
    c.bench_function("address/contained/tinghu", |b| {
        b.iter(|| black_box(tinghu.resolve_location(black_box(&text)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
