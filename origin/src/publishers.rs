//! Which channel is live from which connection, and each channel's packager.
//!
//! A channel's packager outlives its publisher, so a publisher that reconnects continues
//! the same playlist (numbering continues, a discontinuity marks the break). At most one
//! publisher feeds a channel: a second one is refused, or replaces the first when
//! configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::OnConflict;
use crate::packager::{Packager, PackagerConfig};

/// How long an offline channel's packaging state is kept for a returning publisher.
const OFFLINE_RETENTION: Duration = Duration::from_secs(600);

/// One channel's packaging state, shared by its successive publishers.
pub struct ChannelPackaging {
    state: Mutex<PackagingState>,
}

/// The packager and the id of the publisher allowed to feed it.
pub struct PackagingState {
    pub packager: Packager,
    owner: u64,
}

impl ChannelPackaging {
    /// Runs `f` on the packager if publisher `id` still owns the channel; `None` when it
    /// was replaced (its input must not be mixed into the newcomer's stream).
    pub fn with_packager<R>(&self, id: u64, f: impl FnOnce(&mut Packager) -> R) -> Option<R> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (state.owner == id).then(|| f(&mut state.packager))
    }

    fn set_owner(&self, id: u64) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).owner = id;
    }
}

struct Slot {
    packaging: Arc<ChannelPackaging>,
    /// The live publisher: its id and the token that disconnects it.
    live: Option<(u64, CancellationToken)>,
    /// When the last publisher left.
    offline_since: Option<Instant>,
}

/// Why a publisher could not claim a channel.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("channel is already live from another publisher")]
    AlreadyLive,
    #[error("the origin carries its maximum number of live channels ({0})")]
    TooManyPublishers(usize),
}

/// The registry of live channels on this origin.
pub struct Publishers {
    slots: Mutex<HashMap<String, Slot>>,
    packager_cfg: PackagerConfig,
    max_publishers: usize,
    on_conflict: OnConflict,
    next_id: std::sync::atomic::AtomicU64,
}

/// A publisher's claim on a channel; give it back with [`Publishers::release`].
pub struct Claim {
    pub id: u64,
    pub channel: String,
    pub packaging: Arc<ChannelPackaging>,
    /// Cancelled when another publisher replaces this one.
    pub replaced: CancellationToken,
}

impl Publishers {
    pub fn new(packager_cfg: PackagerConfig, max_publishers: usize, on_conflict: OnConflict) -> Self {
        Publishers {
            slots: Mutex::new(HashMap::new()),
            packager_cfg,
            max_publishers,
            on_conflict,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of channels with a live publisher.
    pub fn live_count(&self) -> usize {
        self.lock().values().filter(|s| s.live.is_some()).count()
    }

    /// Claims `channel` for a new publisher.
    pub fn claim(&self, channel: &str) -> Result<Claim, ClaimError> {
        let mut slots = self.lock();
        slots.retain(|name, slot| {
            name == channel || slot.offline_since.is_none_or(|t| t.elapsed() < OFFLINE_RETENTION)
        });
        let live = slots.values().filter(|s| s.live.is_some()).count();
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        if let Some(slot) = slots.get_mut(channel) {
            if let Some((_, previous)) = &slot.live {
                match self.on_conflict {
                    OnConflict::Refuse => return Err(ClaimError::AlreadyLive),
                    OnConflict::Replace => previous.cancel(),
                }
            } else if live >= self.max_publishers {
                return Err(ClaimError::TooManyPublishers(self.max_publishers));
            }
            slot.live = Some((id, token.clone()));
            slot.offline_since = None;
            slot.packaging.set_owner(id);
            return Ok(Claim {
                id,
                channel: channel.to_owned(),
                packaging: slot.packaging.clone(),
                replaced: token,
            });
        }
        if live >= self.max_publishers {
            return Err(ClaimError::TooManyPublishers(self.max_publishers));
        }
        let packaging = Arc::new(ChannelPackaging {
            state: Mutex::new(PackagingState {
                packager: Packager::new(self.packager_cfg.clone()),
                owner: id,
            }),
        });
        let slot =
            Slot { packaging: packaging.clone(), live: Some((id, token.clone())), offline_since: None };
        slots.insert(channel.to_owned(), slot);
        Ok(Claim { id, channel: channel.to_owned(), packaging, replaced: token })
    }

    /// Gives a channel back when its publisher leaves. Returns true when this publisher was
    /// still the live one (not replaced in the meantime).
    pub fn release(&self, claim: &Claim) -> bool {
        let mut slots = self.lock();
        match slots.get_mut(&claim.channel) {
            Some(slot) if matches!(slot.live, Some((id, _)) if id == claim.id) => {
                slot.live = None;
                slot.offline_since = Some(Instant::now());
                true
            }
            _ => false,
        }
    }
}
