//! The ttrpc faces of [`Shim`]: one line per Task API and Sandbox API RPC, plus the requests that
//! allocate a lot noting activity for the idle heap trim ([`crate::memory`]).
//! Errors become ttrpc statuses in one place ([`crate::error`]).

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::api::*;
use containerd_shim_protos::sandbox_api as sb;
use containerd_shim_protos::sandbox_async::Sandbox as SandboxApi;
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

/// The Sandbox API service (`containerd.runtime.sandbox.v1.Sandbox`) over a [`Shim`].
pub struct SandboxService(pub Arc<Shim>);

#[async_trait]
impl SandboxApi for SandboxService {
    async fn create_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::CreateSandboxRequest,
    ) -> TtrpcResult<sb::CreateSandboxResponse> {
        crate::memory::note_activity();
        self.0.create_sandbox(r).await?;
        Ok(sb::CreateSandboxResponse::new())
    }
    async fn start_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::StartSandboxRequest,
    ) -> TtrpcResult<sb::StartSandboxResponse> {
        Ok(self.0.sandbox.start(r).await?)
    }
    async fn platform(
        &self,
        _: &TtrpcContext,
        r: sb::PlatformRequest,
    ) -> TtrpcResult<sb::PlatformResponse> {
        Ok(self.0.sandbox.platform(r)?)
    }
    async fn stop_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::StopSandboxRequest,
    ) -> TtrpcResult<sb::StopSandboxResponse> {
        self.0.sandbox.stop(r)?;
        Ok(sb::StopSandboxResponse::new())
    }
    async fn wait_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::WaitSandboxRequest,
    ) -> TtrpcResult<sb::WaitSandboxResponse> {
        Ok(self.0.sandbox.wait(r).await?)
    }
    async fn sandbox_status(
        &self,
        _: &TtrpcContext,
        r: sb::SandboxStatusRequest,
    ) -> TtrpcResult<sb::SandboxStatusResponse> {
        Ok(self.0.sandbox.status(r)?)
    }
    async fn ping_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::PingRequest,
    ) -> TtrpcResult<sb::PingResponse> {
        self.0.sandbox.ping(r)?;
        Ok(sb::PingResponse::new())
    }
    async fn shutdown_sandbox(
        &self,
        _: &TtrpcContext,
        r: sb::ShutdownSandboxRequest,
    ) -> TtrpcResult<sb::ShutdownSandboxResponse> {
        self.0.shutdown_sandbox(r).await?;
        Ok(sb::ShutdownSandboxResponse::new())
    }
    async fn sandbox_metrics(
        &self,
        _: &TtrpcContext,
        r: sb::SandboxMetricsRequest,
    ) -> TtrpcResult<sb::SandboxMetricsResponse> {
        Ok(self.0.sandbox.metrics(r).await?)
    }
}
