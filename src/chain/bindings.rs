//! Contract bindings generated from the committed artifacts in `contracts/artifacts/`
//! (written by `tmai-pay contracts build`), so ABI drift breaks the build.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SubscriptionCheckout,
    "contracts/artifacts/SubscriptionCheckout.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    MembershipBadge,
    "contracts/artifacts/MembershipBadge.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    TestToken,
    "contracts/artifacts/TestToken.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    ReferenceBadge,
    "contracts/artifacts/ReferenceBadge.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    UnlockStub,
    "contracts/artifacts/UnlockStub.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    SignatureCheck,
    "contracts/artifacts/SignatureCheck.json"
);
