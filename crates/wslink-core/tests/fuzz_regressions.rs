//! Inputs the fuzz targets (crates/wslink-core/fuzz) found failing, kept as
//! plain tests so that the fixes stay fixed without a fuzzing toolchain.

use wslink_core::ids::{IdError, MessageId};

/// `ids` target: "rpc:c1:007" parsed as sequence 7 and formatted back as
/// "rpc:c1:7", a different id to a peer that matches ids as strings (the npm
/// client looks a reply's call up by the exact id). Leading zeros are now
/// refused, so every id that parses formats back to the same string.
#[test]
fn ids_with_leading_zeros_do_not_parse() {
    for bad in ["rpc:c1:007", "publish:a.b:00", "system:c0:01"] {
        assert_eq!(
            bad.parse::<MessageId>(),
            Err(IdError::Malformed { id: bad.to_owned() }),
            "{bad}"
        );
    }
    for good in ["rpc:c1:0", "rpc:c1:7", "publish:a.b:10", "system:c0:0"] {
        let id: MessageId = good.parse().unwrap();
        assert_eq!(id.to_string(), good);
    }
}
