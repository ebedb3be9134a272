// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CheckoutFixture} from "./CheckoutFixture.sol";
import {IRenewalMandates} from "../../src/interfaces/IRenewalMandates.sol";

/// @title MandateFixture
/// @notice Shared setup for the renewal-mandate tests: the checkout fixture plus a renewer,
/// a monthly mandate for `payer` in tUSD, and helpers that sign mandates.
/// @dev As in CheckoutFixture, the digest is built from the type string field by field,
/// independently of the contract's `mandateDigest`.
abstract contract MandateFixture is CheckoutFixture {
    bytes32 internal constant MANDATE_TYPEHASH = keccak256(
        "RenewalMandate(address payer,address token,uint256 maxAmount,uint32 period,uint32 maxCharges,uint64 start,uint64 validUntil,uint32 earlyWindow,uint32 planId,uint256 salt)"
    );
    bytes32 internal constant ORDER_PAID_TOPIC = keccak256("OrderPaid(uint256,address,uint32,address,uint256,uint32)");

    uint32 internal constant MONTH = 30 days;
    uint32 internal constant EARLY = 3 days;
    uint32 internal constant CHARGES = 12;
    /// @dev The cap is a little above the price, as a member would allow for rounding.
    uint256 internal constant CAP = 10_000_000;

    address internal renewer;

    function setUp() public virtual override {
        super.setUp();
        renewer = makeAddr("renewer");
        vm.prank(owner);
        checkout.setRenewer(renewer);
    }

    // ---------------------------------------------------------------- mandates

    /// @dev A monthly mandate for `payer` in tUSD: 12 charges of at most CAP, the first period
    /// starting now, valid for the 12 months.
    function _mandate() internal view returns (IRenewalMandates.RenewalMandate memory) {
        return _mandate(payer);
    }

    function _mandate(address who) internal view returns (IRenewalMandates.RenewalMandate memory m) {
        m = IRenewalMandates.RenewalMandate({
            payer: who,
            token: address(usd),
            maxAmount: CAP,
            period: MONTH,
            maxCharges: CHARGES,
            start: uint64(block.timestamp),
            validUntil: uint64(block.timestamp) + uint64(CHARGES) * MONTH,
            earlyWindow: EARLY,
            planId: PLAN,
            salt: 1
        });
    }

    /// @dev EIP-712 struct hash of `m`, field by field.
    function _mandateHash(IRenewalMandates.RenewalMandate memory m) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                MANDATE_TYPEHASH,
                m.payer,
                m.token,
                m.maxAmount,
                m.period,
                m.maxCharges,
                m.start,
                m.validUntil,
                m.earlyWindow,
                m.planId,
                m.salt
            )
        );
    }

    /// @dev The digest (mandate id) for any chain and verifying contract.
    function _mandateDigest(IRenewalMandates.RenewalMandate memory m, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked("\x19\x01", _domainSeparator(chainId, verifyingContract), _mandateHash(m)));
    }

    /// @dev The digest (mandate id) for this chain and the deployed checkout.
    function _mandateDigest(IRenewalMandates.RenewalMandate memory m) internal view returns (bytes32) {
        return _mandateDigest(m, block.chainid, address(checkout));
    }

    /// @dev The payer's signature over `m` for the deployed checkout.
    function _signMandate(IRenewalMandates.RenewalMandate memory m) internal view returns (bytes memory) {
        return _signDigest(payerKey, _mandateDigest(m));
    }

    /// @dev Approves the bounded allowance a mandate needs: cap × charges.
    function _approveMandate(IRenewalMandates.RenewalMandate memory m) internal {
        vm.prank(m.payer);
        usd.approve(address(checkout), m.maxAmount * m.maxCharges);
    }

    /// @dev Charges `amount` for `orderId` as the renewer, registering `m` with `signature`
    /// when needed.
    function _charge(
        IRenewalMandates.RenewalMandate memory m,
        bytes memory signature,
        uint256 orderId,
        uint256 amount
    ) internal {
        vm.prank(renewer);
        checkout.charge(m, signature, orderId, amount);
    }

    /// @dev Registers `m` with the payer's signature (as anyone: the stranger submits it).
    function _register(IRenewalMandates.RenewalMandate memory m) internal returns (bytes32) {
        bytes memory signature = _signMandate(m);
        vm.prank(stranger);
        return checkout.registerMandate(m, signature);
    }
}
