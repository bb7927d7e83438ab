//! Block-level reads the server needs beyond the data plane's record API: a query that says, per
//! record, which tier served it and which key protects it, and the post-rewrap check that every
//! stored block still decrypts.
//!
//! They are inherent methods of [`DataPlane`] written here (they use the data plane's
//! crate-internal key layout and block opener), so the data plane's own files stay untouched.

use cmksim_sim::SimTime;

use crate::data::store;
use crate::data::{Aek, BlockHeader, DataError, DataPlane, KeyRef, Record, Tier};

/// What a block-level scan saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockScan {
    pub blocks_from_hot: u64,
    pub blocks_from_cold: u64,
}

impl DataPlane {
    /// Like [`DataPlane::scan`], but hands each record with the tier that served it and the key
    /// that protects its durable (cold) copy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan_with_tiers(
        &self,
        account: &str,
        aek: Option<&Aek>,
        workspace: &str,
        table: &str,
        from: SimTime,
        to: SimTime,
        now: SimTime,
        visit: &mut dyn FnMut(Tier, &KeyRef, Record),
    ) -> Result<BlockScan, DataError> {
        if from > to {
            return Err(DataError::InvalidTimeRange { from, to });
        }
        self.account_record(account)?;
        let hot_from_ms = now.sub(self.config().hot_tier_window).0;
        let prefix = store::table_prefix(account, workspace, table);
        let start = store::block_key(account, workspace, table, from.0, 0);
        let mut scan = BlockScan::default();
        for item in self.trees.cold.range(start..store::prefix_end(&prefix)) {
            let (key, cold) = item?;
            let (header, _) = BlockHeader::parse(&cold)
                .map_err(|reason| crate::data::tier::malformed(Tier::Cold, &key, reason))?;
            if header.min_time_ms >= to.0 {
                continue;
            }
            let hot = if header.max_time_ms >= hot_from_ms {
                self.trees.hot.get(&key)?
            } else {
                None
            };
            let (tier, records) = match hot {
                Some(hot) => {
                    scan.blocks_from_hot += 1;
                    (Tier::Hot, self.open_stored(Tier::Hot, &key, &hot, aek)?.1)
                }
                None => {
                    scan.blocks_from_cold += 1;
                    (
                        Tier::Cold,
                        self.open_stored(Tier::Cold, &key, &cold, aek)?.1,
                    )
                }
            };
            for r in records {
                if r.time_generated_ms >= from.0 && r.time_generated_ms < to.0 {
                    visit(tier, &header.key_ref, r);
                }
            }
        }
        Ok(scan)
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
