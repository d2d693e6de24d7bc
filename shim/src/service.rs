//! The ttrpc face of [`Shim`]: one line per Task API RPC, plus the requests that
//! allocate a lot noting activity for the idle heap trim ([`crate::memory`]).
//! Errors become ttrpc statuses in one place ([`crate::error`]).

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::shim_async::Task as TaskApi;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use containerd_shim_protos::ttrpc::Result as TtrpcResult;

use crate::error::Error;
use crate::shim::Shim;

/// The Task API service over a [`Shim`].
pub struct TaskService(pub Arc<Shim>);

#[async_trait]
impl TaskApi for TaskService {
    async fn create(
        &self,
        _: &TtrpcContext,
        r: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        crate::memory::note_activity();
        Ok(self.0.create(r).await?)
    }
    async fn start(&self, _: &TtrpcContext, r: StartRequest) -> TtrpcResult<StartResponse> {
        crate::memory::note_activity();
        Ok(self.0.start(r).await?)
    }
    async fn wait(&self, _: &TtrpcContext, r: WaitRequest) -> TtrpcResult<WaitResponse> {
        Ok(self.0.wait(r).await?)
    }
    async fn kill(&self, _: &TtrpcContext, r: KillRequest) -> TtrpcResult<Empty> {
        self.0.kill(r).await?;
        Ok(Empty::new())
    }
    async fn delete(&self, _: &TtrpcContext, r: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        crate::memory::note_activity();
        Ok(self.0.delete(r).await?)
    }
    async fn state(&self, _: &TtrpcContext, r: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.0.state(r).await?)
    }
    async fn pids(&self, _: &TtrpcContext, r: PidsRequest) -> TtrpcResult<PidsResponse> {
        Ok(self.0.pids(r).await?)
    }
    async fn connect(&self, _: &TtrpcContext, r: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        Ok(self.0.connect(r).await?)
    }
    async fn shutdown(&self, _: &TtrpcContext, r: ShutdownRequest) -> TtrpcResult<Empty> {
        self.0.shutdown(r).await?;
        Ok(Empty::new())
    }
    async fn close_io(&self, _: &TtrpcContext, r: CloseIORequest) -> TtrpcResult<Empty> {
        self.0.close_io(r).await?;
        Ok(Empty::new())
    }
    async fn exec(&self, _: &TtrpcContext, r: ExecProcessRequest) -> TtrpcResult<Empty> {
        crate::memory::note_activity();
        self.0.exec(r).await?;
        Ok(Empty::new())
    }
    async fn resize_pty(&self, _: &TtrpcContext, r: ResizePtyRequest) -> TtrpcResult<Empty> {
        self.0.resize_pty(r).await?;
        Ok(Empty::new())
    }
    async fn pause(&self, _: &TtrpcContext, r: PauseRequest) -> TtrpcResult<Empty> {
        self.0.pause(r).await?;
        Ok(Empty::new())
    }
    async fn resume(&self, _: &TtrpcContext, r: ResumeRequest) -> TtrpcResult<Empty> {
        self.0.resume(r).await?;
        Ok(Empty::new())
    }
    async fn update(&self, _: &TtrpcContext, r: UpdateTaskRequest) -> TtrpcResult<Empty> {
        crate::memory::note_activity();
        self.0.update(r).await?;
        Ok(Empty::new())
    }
    async fn stats(&self, _: &TtrpcContext, r: StatsRequest) -> TtrpcResult<StatsResponse> {
        Ok(self.0.stats(r).await?)
    }
    async fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        Err(Error::Unimplemented("checkpoint: tent does not checkpoint containers".into()).into())
    }
}
