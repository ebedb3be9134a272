// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IAccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";

import {MembershipBadge} from "../src/MembershipBadge.sol";
import {IMembershipBadge} from "../src/interfaces/IMembershipBadge.sol";
import {BadgeFixture} from "./utils/BadgeFixture.sol";

/// @title MembershipBadgeAdminTest
/// @notice Tests of the badge's DEFAULT_ADMIN_ROLE under OpenZeppelin's
/// AccessControlDefaultAdminRules: the constructor's admin and delay, the two-step delayed
/// transfer (begin, refused before the delay, accepted after it, only by the named account,
/// cancellable), `grantRole` / `revokeRole` refusing the admin role, renouncing only through
/// the same delay, and the role model around it (the issuer role stays the admin's to manage;
/// revoke and move follow the admin role to its new holder).
contract MembershipBadgeAdminTest is BadgeFixture {
    address internal newAdmin;

    function setUp() public override {
        super.setUp();
        newAdmin = makeAddr("new admin");
    }

    /// @dev Begins a transfer to `to` as the admin and returns the time it can be accepted after.
    function _begin(address to) internal returns (uint48 schedule) {
        vm.prank(admin);
        badge.beginDefaultAdminTransfer(to);
        (, schedule) = badge.pendingDefaultAdmin();
    }

    // ================================================================ constructor

    function test_constructor_setsDefaultAdminAndDelay() public view {
        assertEq(badge.defaultAdmin(), admin, "defaultAdmin");
        assertEq(badge.owner(), admin, "owner (ERC-5313)");
        assertEq(uint256(badge.defaultAdminDelay()), ADMIN_DELAY, "delay");
        (address pending, uint48 schedule) = badge.pendingDefaultAdmin();
        assertEq(pending, address(0), "no pending admin");
        assertEq(uint256(schedule), 0, "no schedule");
    }

    function testFuzz_constructor_takesAnyDelay(uint48 delay) public {
        MembershipBadge fresh = new MembershipBadge(admin, issuer, delay);
        assertEq(uint256(fresh.defaultAdminDelay()), delay);
    }

    // ================================================================ two-step transfer

    function test_beginDefaultAdminTransfer_schedulesAfterTheDelay() public {
        // Assert (expectation first), Act
        vm.expectEmit(true, true, true, true, address(badge));
        emit IAccessControlDefaultAdminRules.DefaultAdminTransferScheduled(newAdmin, uint48(START) + ADMIN_DELAY);
        uint48 schedule = _begin(newAdmin);

        // Assert: nothing changes hands yet
        (address pending,) = badge.pendingDefaultAdmin();
        assertEq(pending, newAdmin, "pending admin");
        assertEq(uint256(schedule), START + ADMIN_DELAY, "schedule");
        assertEq(badge.defaultAdmin(), admin, "admin kept");
        assertTrue(badge.hasRole(badge.DEFAULT_ADMIN_ROLE(), admin), "admin keeps the role");
        assertFalse(badge.hasRole(badge.DEFAULT_ADMIN_ROLE(), newAdmin), "new admin has no role yet");
    }

    function test_acceptDefaultAdminTransfer_revertsWhen_delayHasNotPassed() public {
        // Arrange
        uint48 schedule = _begin(newAdmin);
        uint256[3] memory times = [uint256(START), START + ADMIN_DELAY - 1, schedule];

        // Act + Assert: refused right away, a second early and at the scheduled second itself
        for (uint256 i; i < times.length; ++i) {
            vm.warp(times[i]);
            vm.prank(newAdmin);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, schedule
                )
            );
            badge.acceptDefaultAdminTransfer();
        }
        assertEq(badge.defaultAdmin(), admin, "admin kept");
    }

    function test_acceptDefaultAdminTransfer_movesTheRoleAfterTheDelay() public {
        // Arrange
        uint48 schedule = _begin(newAdmin);
        vm.warp(uint256(schedule) + 1);
        bytes32 adminRole = badge.DEFAULT_ADMIN_ROLE();

        // Act
        vm.prank(newAdmin);
        badge.acceptDefaultAdminTransfer();

        // Assert
        assertEq(badge.defaultAdmin(), newAdmin, "defaultAdmin");
        assertTrue(badge.hasRole(adminRole, newAdmin), "new admin has the role");
        assertFalse(badge.hasRole(adminRole, admin), "old admin lost it");
        (address pending, uint48 left) = badge.pendingDefaultAdmin();
        assertEq(pending, address(0), "pending cleared");
        assertEq(uint256(left), 0, "schedule cleared");
    }

    function test_acceptDefaultAdminTransfer_revertsWhen_callerIsNotThePendingAdmin() public {
        // Arrange
        uint48 schedule = _begin(newAdmin);
        vm.warp(uint256(schedule) + 1);
        address[3] memory callers = [stranger, admin, issuer];

        // Act + Assert
        for (uint256 i; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IAccessControlDefaultAdminRules.AccessControlInvalidDefaultAdmin.selector, callers[i]
                )
            );
            badge.acceptDefaultAdminTransfer();
        }
        assertEq(badge.defaultAdmin(), admin, "admin kept");
    }

    function test_cancelDefaultAdminTransfer_stopsAPendingTransfer() public {
        // Arrange
        uint48 schedule = _begin(newAdmin);

        // Act
        vm.prank(admin);
        badge.cancelDefaultAdminTransfer();

        // Assert: after the delay there is nothing to accept
        vm.warp(uint256(schedule) + 1);
        vm.prank(newAdmin);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlInvalidDefaultAdmin.selector, newAdmin)
        );
        badge.acceptDefaultAdminTransfer();
        assertEq(badge.defaultAdmin(), admin);
    }

    function test_beginDefaultAdminTransfer_revertsWhen_callerIsNotAdmin() public {
        // Arrange
        bytes32 adminRole = badge.DEFAULT_ADMIN_ROLE();
        address[2] memory callers = [issuer, stranger];

        // Act + Assert: the issuer key, which the service holds online, cannot start a takeover
        for (uint256 i; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(
                abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, callers[i], adminRole)
            );
            badge.beginDefaultAdminTransfer(callers[i]);
        }
    }

    // ================================================================ grantRole / revokeRole / renounceRole

    function test_grantRole_revertsWhen_roleIsDefaultAdmin() public {
        // Arrange
        bytes32 adminRole = badge.DEFAULT_ADMIN_ROLE();

        // Act + Assert: not even the admin can add a second admin directly
        vm.prank(admin);
        vm.expectRevert(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminRules.selector);
        badge.grantRole(adminRole, newAdmin);
        assertFalse(badge.hasRole(adminRole, newAdmin));
    }

    function test_revokeRole_revertsWhen_roleIsDefaultAdmin() public {
        bytes32 adminRole = badge.DEFAULT_ADMIN_ROLE();
        vm.prank(admin);
        vm.expectRevert(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminRules.selector);
        badge.revokeRole(adminRole, admin);
        assertTrue(badge.hasRole(adminRole, admin));
    }

    function test_renounceRole_revertsWhen_adminRenouncesWithoutADelayedTransfer() public {
        bytes32 adminRole = badge.DEFAULT_ADMIN_ROLE();
        vm.prank(admin);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector, 0)
        );
        badge.renounceRole(adminRole, admin);
        assertEq(badge.defaultAdmin(), admin);
    }

    // ================================================================ role model around the admin

    function test_issuerRole_isGrantedAndRevokedByTheAdmin() public {
        // Arrange
        bytes32 issuerRole = badge.ISSUER_ROLE();
        address newIssuer = makeAddr("new issuer");

        // Act: rotate the issuer key
        vm.startPrank(admin);
        badge.grantRole(issuerRole, newIssuer);
        badge.revokeRole(issuerRole, issuer);
        vm.stopPrank();

        // Assert
        vm.prank(newIssuer);
        badge.issue(_one(alice, BASIC, _inAMonth()));
        _assertHolds(alice, uint160(alice));
        vm.prank(issuer);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, issuer, issuerRole)
        );
        badge.issue(_one(bob, BASIC, _inAMonth()));
    }

    function test_revokeAndMove_followTheAdminRoleToItsNewHolder() public {
        // Arrange: badges for alice and bob, then the admin role handed over
        _issue(alice);
        uint256 bobId = _issue(bob);
        uint48 schedule = _begin(newAdmin);
        vm.warp(uint256(schedule) + 1);
        vm.prank(newAdmin);
        badge.acceptDefaultAdminTransfer();

        // Act + Assert: the old admin can no longer revoke or move
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, admin));
        badge.revoke(_wallets(alice));
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IMembershipBadge.MembershipBadge__Unauthorized.selector, admin));
        badge.move(bob, carol);

        // ...the new admin can, and the issuer still can
        vm.prank(newAdmin);
        badge.revoke(_wallets(alice));
        _assertHoldsNone(alice);
        vm.prank(newAdmin);
        badge.move(bob, carol);
        _assertHolds(carol, bobId);
        vm.prank(issuer);
        badge.move(carol, bob);
        _assertHolds(bob, bobId);
    }
}
