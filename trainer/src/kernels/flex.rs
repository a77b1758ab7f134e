//! The fused operations on burn-flex: forward-only for inference, and as autodiff operations (forward kernel +
//! backward kernel) for training, with or without burn's checkpointing (their state is kept, never recomputed).

use std::sync::Arc;

use burn::{
    backend::{
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        flex::FlexTensor,
        Autodiff,
    },
    tensor::{
        ops::{BoolTensor, FloatTensor},
        Shape, TensorData,
    },
};

use super::{
    attention::{self, View},
    gemm::Mat,
    linear, logprobs, rms_norm, rope,
    route::{Flex, Fused},
    swiglu,
};

/// The contiguous f32 elements of a contiguous tensor.
fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("kernels: a contiguous f32 tensor")
}

/// `t` laid out contiguously (no copy when it already is).
fn dense(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

fn shape(t: &FlexTensor) -> Shape {
    t.layout().shape().clone()
}

fn from_vec(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// `t` itself when its strides are non-negative (the attention kernel reads strided views), else a copy.
fn readable(t: FlexTensor) -> FlexTensor {
    if t.layout().strides().iter().all(|s| *s >= 0) {
        t
    } else {
        t.to_contiguous()
    }
}

/// The attention view of a 4-D tensor that passed [`readable`].
fn view(t: &FlexTensor) -> View<'_> {
    let dims = t.layout().shape();
    assert_eq!(dims.num_dims(), 4, "kernels: attention takes 4-D tensors");
    let st = t.layout().strides();
    View {
        data: t.storage::<f32>(),
        offset: t.layout().start_offset(),
        dims: [dims[0], dims[1], dims[2], dims[3]],
        strides: [st[0] as usize, st[1] as usize, st[2] as usize, st[3] as usize],
    }
}

/// The matrix view of a 2-D tensor that passed [`readable`].
fn mat(t: &FlexTensor) -> Mat<'_> {
    let dims = t.layout().shape();
    assert_eq!(dims.num_dims(), 2, "kernels: linear takes 2-D tensors");
    let st = t.layout().strides();
    let data = &t.storage::<f32>()[t.layout().start_offset()..];
    Mat::new(data, dims[0], dims[1], st[0] as usize, st[1] as usize)
}

/// `x [rows, d_in] · w [d_in, d_out]`.
fn linear_forward(x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let (rows, d_in, d_out) = (shape(x)[0], shape(w)[0], shape(w)[1]);
    assert_eq!(shape(x)[1], d_in, "kernels: linear input width");
    from_vec(linear::forward(mat(x), mat(w), rows, d_in, d_out), Shape::new([rows, d_out]))
}

/// The mask `[b, 1, s, t]` as `b·s·t` bytes, 1 where hidden.
fn mask_bytes(mask: &FlexTensor) -> Arc<Vec<u8>> {
    let m = mask.to_contiguous();
    Arc::new(m.storage::<u8>().iter().map(|v| u8::from(*v != 0)).collect())
}

fn rms_forward(x: &FlexTensor, w: &FlexTensor, eps: f32) -> (FlexTensor, Vec<f32>) {
    let (sx, sw) = (shape(x), shape(w));
    assert!(
        sw.num_dims() == 1 && sx.num_dims() >= 1 && sx[sx.num_dims() - 1] == sw[0] && sw[0] > 0,
        "kernels: rms_norm {sx:?} with weight {sw:?}"
    );
    let (y, inv) = rms_norm::forward(f32s(x), f32s(w), eps);
    (from_vec(y, shape(x)), inv)
}

fn rope_forward(x: &FlexTensor, cos: &FlexTensor, sin: &FlexTensor, transpose: bool) -> FlexTensor {
    let s = shape(x);
    assert_eq!(s.num_dims(), 4, "kernels: rope takes [b, s, h, d]");
    let table = Shape::new([s[0], s[1], 1, s[3]]);
    assert!(shape(cos) == table && shape(sin) == table, "kernels: rope tables {:?} for x {s:?}", shape(cos));
    let y = rope::rotate(f32s(x), f32s(cos), f32s(sin), s[2], s[3], transpose);
    from_vec(y, s)
}

fn attention_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    mask: &[u8],
    scale: f32,
) -> (FlexTensor, Vec<f32>) {
    let (out, probs) = attention::forward(view(q), view(k), view(v), mask, scale);
    (from_vec(out, shape(q)), probs)
}

/// `[b, s, vocab]` logits → (`[b, s]` log-probabilities, logsumexp per row).
fn logprobs_forward(logits: &FlexTensor, targets: &[usize]) -> (FlexTensor, Vec<f32>) {
    let s = shape(logits);
    let (logp, lse) = logprobs::forward(f32s(logits), s[2], targets);
    (from_vec(logp, Shape::new([s[0], s[1]])), lse)
}

/// `silu(gate) · up` on equal shapes.
fn swiglu_forward(g: &FlexTensor, u: &FlexTensor) -> FlexTensor {
    assert_eq!(shape(g), shape(u), "kernels: swiglu gate and up shapes");
    from_vec(swiglu::forward(f32s(g), f32s(u)), shape(g))
}

impl Fused for Flex {
    fn linear(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        linear_forward(&readable(x), &readable(weight))
    }

    fn token_logprobs(logits: FlexTensor, targets: Arc<Vec<usize>>) -> FlexTensor {
        logprobs_forward(&dense(&logits), &targets).0
    }

    fn rms_norm(x: FlexTensor, weight: FlexTensor, eps: f32) -> FlexTensor {
        rms_forward(&dense(&x), &dense(&weight), eps).0
    }

    fn swiglu(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        swiglu_forward(&dense(&gate), &dense(&up))
    }

    fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
        rope_forward(&dense(&x), &dense(&cos), &dense(&sin), false)
    }

    fn attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, mask: FlexTensor, scale: f32) -> FlexTensor {
        let (q, k, v) = (readable(q), readable(k), readable(v));
        attention_forward(&q, &k, &v, &mask_bytes(&mask), scale).0
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// Input, weight (both contiguous), inverse RMS per row.
    type State = (FlexTensor, FlexTensor, Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, inv) = ops.state;
        let dy = dense(&grads.consume::<Flex>(&ops.node));
        let [px, pw] = ops.parents;
        let (dx, dw) = rms_norm::backward(f32s(&x), f32s(&w), &inv, f32s(&dy), px.is_some(), pw.is_some());
        if let (Some(p), Some(dx)) = (px, dx) {
            grads.register::<Flex>(p.id, from_vec(dx, shape(&x)));
        }
        if let (Some(p), Some(dw)) = (pw, dw) {
            grads.register::<Flex>(p.id, from_vec(dw, shape(&w)));
        }
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// Gate and up projections (contiguous).
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (g, u) = ops.state;
        let dh = dense(&grads.consume::<Flex>(&ops.node));
        let (dg, du) = swiglu::backward(f32s(&g), f32s(&u), f32s(&dh));
        let [pg, pu] = ops.parents;
        if let Some(p) = pg {
            grads.register::<Flex>(p.id, from_vec(dg, shape(&g)));
        }
        if let Some(p) = pu {
            grads.register::<Flex>(p.id, from_vec(du, shape(&u)));
        }
    }
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    /// cos and sin tables (contiguous).
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (cos, sin) = ops.state;
        let dy = dense(&grads.consume::<Flex>(&ops.node));
        if let [Some(p)] = ops.parents {
            grads.register::<Flex>(p.id, rope_forward(&dy, &cos, &sin, true));
        }
    }
}

/// State of an attention call kept for its backward pass.
#[derive(Clone, Debug)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    probs: Arc<Vec<f32>>,
    mask: Arc<Vec<u8>>,
    scale: f32,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let st = ops.state;
        let dout = dense(&grads.consume::<Flex>(&ops.node));
        let (dq, dk, dv) = attention::backward(
            view(&st.q),
            view(&st.k),
            view(&st.v),
            &st.probs,
            &st.mask,
            f32s(&dout),
            st.scale,
        );
        let [pq, pk, pv] = ops.parents;
        for (parent, grad, like) in [(pq, dq, &st.q), (pk, dk, &st.k), (pv, dv, &st.v)] {
            if let Some(p) = parent {
                grads.register::<Flex>(p.id, from_vec(grad, shape(like)));
            }
        }
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 2> for LinearBackward {
    /// Input `[rows, d_in]`, kept when the weight needs a gradient, and weight `[d_in, d_out]`, kept when the
    /// input needs one (strided views); and `[rows, d_in, d_out]`.
    type State = (Option<FlexTensor>, Option<FlexTensor>, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, [rows, d_in, d_out]) = ops.state;
        let dy = dense(&grads.consume::<Flex>(&ops.node));
        let dy_m = Mat::rows(f32s(&dy), rows, d_out);
        let [px, pw] = ops.parents;
        if let (Some(p), Some(w)) = (px, &w) {
            let dx = linear::backward_x(dy_m, mat(w), rows, d_in, d_out);
            grads.register::<Flex>(p.id, from_vec(dx, Shape::new([rows, d_in])));
        }
        if let (Some(p), Some(x)) = (pw, &x) {
            let dw = linear::backward_w(mat(x), dy_m, rows, d_in, d_out);
            grads.register::<Flex>(p.id, from_vec(dw, Shape::new([d_in, d_out])));
        }
    }
}

#[derive(Debug)]
struct LogprobsBackward;

impl Backward<Flex, 1> for LogprobsBackward {
    /// Logits (contiguous), targets, logsumexp per row.
    type State = (FlexTensor, Arc<Vec<usize>>, Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        let g = dense(&grads.consume::<Flex>(&ops.node));
        if let [Some(p)] = ops.parents {
            let s = shape(&logits);
            let dx = logprobs::backward(f32s(&logits), s[2], &targets, &lse, f32s(&g));
            grads.register::<Flex>(p.id, from_vec(dx, s));
        }
    }
}

impl<C: CheckpointStrategy> Fused for Autodiff<Flex, C> {
    fn linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (x_grad, w_grad) = (x.is_tracked(), weight.is_tracked());
        let (xp, wp) = (readable(x.primitive.clone()), readable(weight.primitive.clone()));
        let y = linear_forward(&xp, &wp);
        let dims = [shape(&xp)[0], shape(&wp)[0], shape(&wp)[1]];
        match LinearBackward.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((w_grad.then_some(xp), x_grad.then_some(wp), dims), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn token_logprobs(logits: FloatTensor<Self>, targets: Arc<Vec<usize>>) -> FloatTensor<Self> {
        let x = dense(&logits.primitive);
        let (logp, lse) = logprobs_forward(&x, &targets);
        match LogprobsBackward.prepare::<C>([logits.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, targets, Arc::new(lse)), logp),
            OpsKind::UnTracked(prep) => prep.finish(logp),
        }
    }

    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let (xc, wc) = (dense(&x.primitive), dense(&weight.primitive));
        let (y, inv) = rms_forward(&xc, &wc, eps);
        match RmsNormBackward.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xc, wc, Arc::new(inv)), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (g, u) = (dense(&gate.primitive), dense(&up.primitive));
        let h = swiglu_forward(&g, &u);
        match SwigluBackward.prepare::<C>([gate.node.clone(), up.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((g, u), h),
            OpsKind::UnTracked(prep) => prep.finish(h),
        }
    }

    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self> {
        let (cos, sin) = (dense(&cos.primitive), dense(&sin.primitive));
        let y = rope_forward(&dense(&x.primitive), &cos, &sin, false);
        match RopeBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((cos, sin), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: BoolTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let (qp, kp, vp) =
            (readable(q.primitive.clone()), readable(k.primitive.clone()), readable(v.primitive.clone()));
        let mask = mask_bytes(&mask);
        let (out, probs) = attention_forward(&qp, &kp, &vp, &mask, scale);
        match AttentionBackward
            .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(AttentionState { q: qp, k: kp, v: vp, probs: Arc::new(probs), mask, scale }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
