// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IRenewalMandates} from "../../src/interfaces/IRenewalMandates.sol";
import {MandateFixture} from "../utils/MandateFixture.sol";
import {UnlockStub} from "./UnlockStub.sol";

/// @dev The parts of Unlock's PublicLock v15 the bench calls.
interface IPublicLockV15 {
    function initialize(
        address payable lockCreator,
        uint256 expirationDuration,
        address tokenAddress,
        uint256 keyPrice,
        uint256 maxNumberOfKeys,
        string calldata lockName
    ) external;

    function purchase(
        uint256[] memory values,
        address[] memory recipients,
        address[] memory referrers,
        address[] memory keyManagers,
        bytes[] calldata data
    ) external payable returns (uint256[] memory tokenIds);

    function renewMembershipFor(uint256 tokenId, address referrer) external;

    function keyExpirationTimestampFor(uint256 tokenId) external view returns (uint256);

    function publicLockVersion() external pure returns (uint16);
}

/// @title UnlockRenewalBench
/// @notice Gas of a renewal `charge` beside Unlock Protocol's PublicLock v15
/// `renewMembershipFor` (an ERC-20 lock at the same price and a 30-day duration) and a bare
/// `transferFrom`, in the same run. Run it isolated, as MandateGas.t.sol:
/// `forge test --match-path test/bench/UnlockRenewal.t.sol --isolate -vv`.
/// @dev PublicLock's creation bytecode comes from the pinned `@unlock-protocol/contracts`
/// package (tools/package.json), read with `vm.getCode` (foundry.toml allows reading that
/// one folder). The lock is initialised directly, not through the Unlock factory's proxy:
/// the bench measures the lock's own code. Steady state for all three: the key, the
/// mandate and the lock's and treasury's balances exist before the measured calls.
contract UnlockRenewalBench is MandateFixture {
    uint256 private constant RUNS = 12;
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;
    string private constant PUBLIC_LOCK_V15 =
        "../tools/node_modules/@unlock-protocol/contracts/dist/abis/PublicLock/PublicLockV15.json";

    IPublicLockV15 private lock;
    uint256 private keyId;
    bool private _isolated = true;

    function setUp() public override {
        super.setUp();
        // The lock
        bytes memory code = vm.getCode(PUBLIC_LOCK_V15);
        address deployed;
        assembly ("memory-safe") {
            deployed := create(0, add(code, 0x20), mload(code))
        }
        require(deployed != address(0), "PublicLock deployment failed");
        lock = IPublicLockV15(deployed);
        UnlockStub unlock = new UnlockStub();
        vm.prank(address(unlock));
        lock.initialize(payable(owner), MONTH, address(usd), PRICE, type(uint256).max, "Bench lock");

        // The member's first month bought on the lock, with an allowance for the renewals
        vm.startPrank(payer);
        usd.approve(address(lock), PRICE * (RUNS + 1));
        uint256[] memory values = new uint256[](1);
        values[0] = PRICE;
        address[] memory recipients = new address[](1);
        recipients[0] = payer;
        address[] memory referrers = new address[](1);
        address[] memory managers = new address[](1);
        managers[0] = payer;
        bytes[] memory data = new bytes[](1);
        keyId = lock.purchase(values, recipients, referrers, managers, data)[0];
        vm.stopPrank();

        // The treasury holds tokens and order ids 0-255 share a non-zero word, as in MandateGas
        _approveAndPay(_quote(0));
    }

    function test_bench_chargeBesideUnlockRenewMembershipFor() public {
        // Arrange: the same member on the checkout with a registered mandate
        assertEq(lock.publicLockVersion(), 15, "PublicLock version");
        IRenewalMandates.RenewalMandate memory m = _mandate();
        _register(m);
        vm.startPrank(payer);
        usd.approve(address(checkout), CAP * (RUNS + 1));
        usd.approve(stranger, PRICE * (RUNS + 1));
        vm.stopPrank();

        // Act: each month, the lock's renewal (90 % into the key, when it first may), the
        // checkout's charge, and a bare transfer of the same price
        uint256 unlockGas;
        uint256 chargeGas;
        uint256 transferGas;
        for (uint256 k; k < RUNS; ++k) {
            uint256 expires = lock.keyExpirationTimestampFor(keyId);
            vm.warp(expires - MONTH / 10);
            unlockGas += _measure(stranger, address(lock), abi.encodeCall(lock.renewMembershipFor, (keyId, address(0))));
            chargeGas += _measure(renewer, address(checkout), abi.encodeCall(checkout.charge, (m, "", 1 + k, PRICE)));
            transferGas +=
                _measure(stranger, address(usd), abi.encodeCall(usd.transferFrom, (payer, treasury, PRICE)));
        }

        // Assert: every renewal landed; report
        assertEq(checkout.mandateState(_mandateDigest(m)).charges, RUNS, "charges");
        assertEq(usd.balanceOf(address(lock)), PRICE * (RUNS + 1), "lock received every renewal");
        _report("Unlock PublicLock v15 renewMembershipFor, mean", unlockGas / RUNS);
        _report("charge (mandate registered), mean", chargeGas / RUNS);
        _report("ERC-20 transferFrom, mean", transferGas / RUNS);
        _log("charge / renewMembershipFor, x1000", chargeGas * 1000 / unlockGas);
    }

    // ---------------------------------------------------------------- measuring

    /// @dev Calls `target` with `data` from `from`; returns `vm.lastCallGas`'s total, the
    /// transaction's gas under `--isolate`.
    function _measure(address from, address target, bytes memory data) private returns (uint256 gas) {
        vm.prank(from);
        (bool ok, bytes memory reason) = target.call(data);
        if (!ok) revert(string.concat("measured call reverted: ", vm.toString(reason)));
        gas = vm.lastCallGas().gasTotalUsed;
        if (gas < 21_000) _isolated = false;
    }

    function _report(string memory what, uint256 gas) private view {
        _log(string.concat(what, _isolated ? ", transaction gas" : ", execution gas (not isolated)"), gas);
    }

    function _log(string memory what, uint256 value) private view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", what, value));
        ok;
    }
}
