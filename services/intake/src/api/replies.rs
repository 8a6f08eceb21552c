//! Replies (答复): the acknowledgements, results, chases and notices due, and the attempts to
//! deliver them; a result that reached the customer tells them the outcome (on the case's write
//! path). The phrases are in `crate::replies`.

use kefu_kit::{error::FieldViolations, paging, time::to_micros};
use kefu_proto::intake::v1 as pb;
use tonic::{Request, Response};

use super::{IntakeApi, Reply, check_text, child_name, optional_case_number, parts};
use crate::{
    complaint::Command,
    convert::reply_to_proto,
    error::{Error, db},
    replies,
};

impl IntakeApi {
    pub(super) async fn list_replies(
        &self,
        request: Request<pb::ListRepliesRequest>,
    ) -> Reply<pb::ListRepliesResponse> {
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let case_number = optional_case_number(&request.complaint, "complaint")?;
        let filter = format!("{}|{}", request.complaint, request.due_only);
        let after = paging::decode_token(&request.page_token, &filter)?;
        let due_by = request.due_only.then(|| to_micros(self.context.clock.now()));
        let (rows, next) = replies::list(&self.context.db, case_number, due_by, page_size, after)
            .await
            .map_err(db("listing replies"))?;
        Ok(Response::new(pb::ListRepliesResponse {
            replies: rows.into_iter().map(reply_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &filter)).unwrap_or_default(),
        }))
    }

    pub(super) async fn record_reply_attempt(
        &self,
        request: Request<pb::RecordReplyAttemptRequest>,
    ) -> Reply<pb::Reply> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        let name = child_name(&request.name, "replies").map_err(|more| violations.extend(more)).ok();
        check_text(&mut violations, "note", &request.note, false);
        let Some((case_number, seq)) = name else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        let missing = || Error::NotFound(format!("no reply named {}", request.name));
        let reply = replies::get(&self.context.db, case_number, seq)
            .await
            .map_err(db("reading a reply"))?
            .ok_or_else(missing)?;
        let command = Command::RecordReplyAttempt {
            reply: Box::new(reply),
            reached: request.reached,
            note: request.note.trim().into(),
        };
        self.keeper.act(&self.context, case_number, None, &caller, &trace, command).await?;
        let recorded = replies::get(&self.context.db, case_number, seq)
            .await
            .map_err(db("reading a reply"))?
            .ok_or_else(missing)?;
        Ok(Response::new(reply_to_proto(recorded)))
    }
}
