//! Block-level reads the server needs beyond the data plane's record API: a query that says, per
//! record, which tier served it and which key protects it (the data plane's
//! [`DataPlane::scan_tiers`], with block counts per tier), and the post-rewrap check that every
//! stored block still decrypts.
//!
//! They are inherent methods of [`DataPlane`] written here (they use the data plane's
//! crate-internal key layout and block opener), so the data plane's own files stay untouched.

use crate::data::store;
use crate::data::tier::ScanRequest;
use crate::data::{Aek, DataError, DataPlane, KeyRef, Record, Tier};

/// What a block-level scan saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockScan {
    pub blocks_from_hot: u64,
    pub blocks_from_cold: u64,
}

impl DataPlane {
    /// [`DataPlane::scan_tiers`] (records with the tier that served them and the key that
    /// protects their durable copy), counting the blocks each tier served.
    pub(crate) fn scan_with_tiers(
        &self,
        request: &ScanRequest<'_>,
        visit: &mut dyn FnMut(Tier, &KeyRef, Record),
    ) -> Result<BlockScan, DataError> {
        let stats = self.scan_tiers(request, visit)?;
        Ok(BlockScan {
            blocks_from_hot: stats.served_from_hot,
            blocks_from_cold: stats.served_from_cold,
        })
    }

    /// Opens every cold block and hot copy of `account` with `aek` (blocks under the MMK need
    /// none). Returns (blocks checked, blocks that failed to open).
    pub(crate) fn verify_blocks(&self, account: &str, aek: Option<&Aek>) -> (u64, u64) {
        let prefix = store::account_prefix(account);
        let (mut checked, mut failed) = (0u64, 0u64);
        for (tier, tree) in [(Tier::Cold, &self.trees.cold), (Tier::Hot, &self.trees.hot)] {
            for item in tree.scan_prefix(&prefix) {
                checked += 1;
                let ok = match item {
                    Ok((key, bytes)) => self.open_stored(tier, &key, &bytes, aek).is_ok(),
                    Err(_) => false,
                };
                failed += u64::from(!ok);
            }
        }
        (checked, failed)
    }
}
