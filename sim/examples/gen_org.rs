//! Writes the generated Tinghu organisation to stdout (`org/tinghu.toml`).
fn main() {
    match gridcase_sim::org::to_toml(&gridcase_sim::org::tinghu()) {
        Ok(t) => print!("{t}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
