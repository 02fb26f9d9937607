//! Blocking: a player stops seeing what another writes, in every room. A
//! platform's block list (a console's, a store's) comes the same way
//! through the server API, so a game can keep its players' lists in step.
//!
//! What a block hides is decided on the blocker's pages: the server sends
//! each room's messages to every page alike (one frame per event, shared by
//! all its connections), and the page leaves out the lines and the typing
//! of whoever its user blocked — on the server's render too, so a page
//! without JavaScript hides them as well. The blocked player is not told,
//! and sees and is seen in the member list as before; moderation events
//! about them still show. Each page of the blocker learns the list in its
//! welcome, and every change at once: the change is published to every
//! room the blocker is a member of (as `Blocked` or `Unblocked`, which
//! only the blocker's own connections pass on).
use chrono::Utc;

use crate::protocol::moderation::{authorize, Request, MAX_BLOCKED};
use crate::protocol::{Role, ServerFrame};
use crate::rooms::{RoomError, Rooms};
use crate::store::{self, blocks::Blocked};
use crate::validate::normalize_id;

impl Rooms {
    /// Lifts every block `user_id` made (an account closed), their pages
    /// told of each; returns whom they had blocked.
    pub async fn clear_blocks(&self, user_id: &str) -> Result<Vec<String>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        let blocked = store::blocks::unblock_all(self.db(), &user_id).await?;
        metrics::counter!(crate::metrics::BLOCKS, "what" => "unblock").increment(blocked.len() as u64);
        let lifted = blocked
            .iter()
            .map(|target| ServerFrame::Unblocked { user_id: user_id.clone(), target: target.clone() });
        self.tell_rooms_of(&user_id, lifted.collect()).await?;
        Ok(blocked)
    }

    /// The players `user_id` has blocked, in the order they were blocked.
    pub async fn blocked_by(&self, user_id: &str) -> Result<Vec<String>, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        Ok(store::blocks::blocked_by(self.db(), &user_id).await?)
    }

    /// `user_id` blocks `target` (or, `blocked` false, lifts the block);
    /// their pages in every room hear of it. Whether it changed anything
    /// (`false`: blocked already, or not blocked). Refused for oneself and
    /// the game, and past [`MAX_BLOCKED`]. Whether `target` exists does not
    /// matter: a block may come before the player does.
    pub async fn set_blocked(&self, user_id: &str, target: &str, blocked: bool) -> Result<bool, RoomError> {
        let user_id = normalize_id(user_id, "user name")?;
        // Whom one may block: the protocol's rule, as for a page's request.
        let named = target.to_owned();
        let request =
            if blocked { Request::Block { user_id: named } } else { Request::Unblock { user_id: named } };
        authorize(&user_id, Role::Player, &request, None).map_err(RoomError::Refused)?;
        let target = normalize_id(target, "user name")?;
        let frame = if blocked {
            match store::blocks::block(self.db(), &user_id, &target, MAX_BLOCKED, Utc::now()).await? {
                Blocked::Added => ServerFrame::Blocked { user_id: user_id.clone(), target },
                Blocked::Already => return Ok(false),
                Blocked::Full => {
                    return Err(RoomError::Unchanged(format!(
                        "The block list is full ({MAX_BLOCKED} players): unblock someone first."
                    )))
                }
            }
        } else {
            if !store::blocks::unblock(self.db(), &user_id, &target).await? {
                return Ok(false);
            }
            ServerFrame::Unblocked { user_id: user_id.clone(), target }
        };
        metrics::counter!(crate::metrics::BLOCKS, "what" => if blocked { "block" } else { "unblock" })
            .increment(1);
        self.tell_rooms_of(&user_id, vec![frame]).await?;
        Ok(true)
    }

    /// Publishes `frames` to every room `user_id` is a member of (their
    /// pages there pass them on), walking the rooms once.
    async fn tell_rooms_of(&self, user_id: &str, frames: Vec<ServerFrame>) -> Result<(), RoomError> {
        let mut after = String::new();
        while !frames.is_empty() {
            let rooms = store::user_rooms(self.db(), user_id, &after, 100).await?;
            let Some((last, _)) = rooms.last() else { break };
            after = last.clone();
            for (channel_id, _) in rooms {
                for frame in &frames {
                    self.publish(&channel_id, frame.clone()).await;
                }
            }
        }
        Ok(())
    }
}
