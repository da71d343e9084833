//! The `geofence` operator CLI.

fn main() -> std::process::ExitCode {
    geofence::cli::main()
}
