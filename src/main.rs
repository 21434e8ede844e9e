//! The regdrift binary: anyhow at the edge, errors printed as `regdrift: <cause chain>`,
//! exit status 2 on any error (1 is `diff`'s "something diverges").

use std::process::ExitCode;

fn main() -> ExitCode {
    match regdrift::cli::main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut msg = format!("regdrift: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{}", regdrift::sanitize::inert(&msg));
            ExitCode::from(2)
        }
    }
}
