// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IRenewalMandates
/// @notice Automatic renewal a member can trust: the member signs one EIP-712
/// {RenewalMandate} that bounds every future charge (token, cap per charge, period, number of
/// charges, validity), and the service's renewer role may then {charge} within those bounds
/// only. Each charge is reported with the checkout's own `OrderPaid` event (plus
/// {MandateCharged}), so the service's watcher confirms it like any checkout payment.
/// @dev The payer gives the checkout an ERC-20 allowance of `maxAmount × maxCharges`, never
/// an unlimited one. The contract cannot enforce the allowance (the token owns it), but it
/// never pulls more than `maxAmount` per charge nor more than `maxCharges` charges, so the
/// allowance the page asks for is exactly what the mandate can ever take.
interface IRenewalMandates {
    /// @notice What a payer allows the renewer to charge, signed once by the payer.
    /// @dev EIP-712 type:
    /// `RenewalMandate(address payer,address token,uint256 maxAmount,uint32 period,uint32 maxCharges,uint64 start,uint64 validUntil,uint32 earlyWindow,uint32 planId,uint256 salt)`,
    /// in the checkout's domain (name "TMAI Checkout", version "1", chain id, this contract's
    /// address), so a mandate signed for one chain or one checkout is worthless on another.
    /// The mandate's id is its EIP-712 digest.
    ///
    /// Charge `k` (counting billing periods from 0) may only happen inside
    /// `[start + k·period − earlyWindow, start + (k+1)·period)`, once, so charges stay anchored
    /// to `start` and never drift later or earlier however late each one is made.
    struct RenewalMandate {
        /// The account charged: signs the mandate (ECDSA, or ERC-1271 for a contract wallet)
        /// and alone may revoke it.
        address payer;
        /// The ERC-20 token charged.
        address token;
        /// The most one charge may take, in the token's smallest unit (a price rise above it
        /// needs a new mandate).
        uint256 maxAmount;
        /// Seconds in one billing period; at most one charge per period.
        uint32 period;
        /// The most charges the mandate ever allows.
        uint32 maxCharges;
        /// Unix time at which billing period 0 begins: the anchor of every charge window.
        uint64 start;
        /// Unix time after which no charge is possible.
        uint64 validUntil;
        /// Seconds before a period begins from which its charge may be taken (renewal before
        /// expiry, retries); smaller than `period`.
        uint32 earlyWindow;
        /// The plan each charge pays for (the service's catalog id), reported in `OrderPaid`.
        uint32 planId;
        /// Any value making otherwise equal mandates distinct (a new mandate after a revoke).
        uint256 salt;
    }

    /// @notice What the checkout records about a mandate (one storage slot).
    struct MandateState {
        /// The signature was checked and the mandate may be charged.
        bool registered;
        /// The payer revoked it; nothing can register or charge it again.
        bool revoked;
        /// Charges made so far.
        uint32 charges;
        /// The first billing period that may still be charged (one past the last charged).
        uint64 nextPeriod;
    }

    /// @notice Emitted once per mandate, when its signature is checked and it is stored.
    /// @param mandateId The mandate's EIP-712 digest.
    /// @param payer The mandate's payer.
    /// @param planId The mandate's plan.
    /// @param mandate Every signed field, so the mandate can be rebuilt from the log alone
    /// (for example to revoke it without the service).
    event MandateRegistered(
        bytes32 indexed mandateId, address indexed payer, uint32 indexed planId, RenewalMandate mandate
    );

    /// @notice Emitted with `OrderPaid` for every charge.
    /// @param mandateId The mandate charged.
    /// @param orderId The order id paid (the same as in `OrderPaid`).
    /// @param chargeNumber The charge's number, from 1 to `maxCharges`.
    /// @param period The billing period paid, counted from 0 at `start`.
    /// @param amount The amount the treasury received.
    event MandateCharged(
        bytes32 indexed mandateId, uint256 indexed orderId, uint32 chargeNumber, uint64 period, uint256 amount
    );

    /// @notice Emitted when the payer revokes a mandate (registered or not).
    event MandateRevoked(bytes32 indexed mandateId, address indexed payer);

    /// @notice Emitted when the owner changes the renewer.
    event RenewerChanged(address indexed previousRenewer, address indexed newRenewer);

    /// @notice Only the renewer may charge mandates.
    error SubscriptionCheckout__NotRenewer(address caller);

    /// @notice A mandate field is out of range: zero payer, token, cap, period or number of
    /// charges, or an early window not shorter than the period.
    error SubscriptionCheckout__InvalidMandate();

    /// @notice The mandate was registered already.
    error SubscriptionCheckout__MandateAlreadyRegistered(bytes32 mandateId);

    /// @notice The payer revoked the mandate.
    error SubscriptionCheckout__MandateRevoked(bytes32 mandateId);

    /// @notice The mandate's `validUntil` has passed.
    error SubscriptionCheckout__MandateExpired(bytes32 mandateId, uint64 validUntil, uint256 timestamp);

    /// @notice All `maxCharges` charges were made.
    error SubscriptionCheckout__MandateExhausted(bytes32 mandateId, uint32 maxCharges);

    /// @notice The next chargeable billing period's window has not opened yet (this period
    /// was charged already, or the first has not come).
    error SubscriptionCheckout__ChargeTooEarly(bytes32 mandateId, uint256 opensAt, uint256 timestamp);

    /// @notice The charge asks for more than the mandate's cap.
    error SubscriptionCheckout__ChargeAboveCap(uint256 amount, uint256 maxAmount);

    /// @notice The charge asks for nothing (it would mark an order paid for free).
    error SubscriptionCheckout__EmptyCharge();

    /// @notice Checks the payer's signature and stores `mandate`, so the renewer can charge it.
    /// Anyone may submit it: the payer's signature is the authority.
    /// @param mandate The signed mandate.
    /// @param signature The payer's signature over the mandate's EIP-712 digest (65-byte
    /// ECDSA, or whatever the payer's ERC-1271 wallet accepts).
    /// @return mandateId The mandate's EIP-712 digest.
    function registerMandate(RenewalMandate calldata mandate, bytes calldata signature)
        external
        returns (bytes32 mandateId);

    /// @notice Charges `amount` under `mandate` for order `orderId`, registering the mandate in
    /// the same transaction when it is not registered yet (the first charge).
    /// @param mandate The signed mandate.
    /// @param signature The payer's signature; read only when the mandate is not registered.
    /// @param orderId The order id the service assigned to this renewal.
    /// @param amount The amount the treasury receives, at most `mandate.maxAmount`.
    function charge(RenewalMandate calldata mandate, bytes calldata signature, uint256 orderId, uint256 amount)
        external;

    /// @notice Revokes `mandate` for good, registered or not: no later charge or
    /// registration of it succeeds. Only its payer may call it, and it works while paused.
    function revokeMandate(RenewalMandate calldata mandate) external;

    /// @notice Changes the account allowed to charge mandates; zero stops all charges.
    function setRenewer(address newRenewer) external;

    /// @notice Returns the account allowed to charge mandates.
    function renewer() external view returns (address);

    /// @notice Returns the EIP-712 digest the payer signs for `mandate`: the mandate's id.
    function mandateDigest(RenewalMandate calldata mandate) external view returns (bytes32);

    /// @notice Returns what the checkout records about mandate `mandateId`.
    function mandateState(bytes32 mandateId) external view returns (MandateState memory);
}
