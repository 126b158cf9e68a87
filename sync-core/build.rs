//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files at compile time, and cargo does not
//! otherwise notice new files in `migrations/`.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
