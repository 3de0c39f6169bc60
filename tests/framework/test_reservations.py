"""corral.framework.reservations: the operations a stateful framework sends, checked by the master's
own rules, and offers split into unreserved, reserved and volumes."""
import corral
from corral.engines.master import operations
from corral.framework.reservations import OfferView, create_volume, reserve, reserved_to, unreserve, volume
from corral.resources import Resources

ROLE = "db"


def test_reserve_create_then_destroy_unreserve_round_trips_on_an_agent():
    total = Resources.parse("cpus:4;mem:1024;disk:1000;ports:[100-200]")
    wanted = Resources.parse("cpus:1;mem:256;disk:300;ports:[150-150]")
    after_reserve = operations.apply(total, operations.conversion(reserve(wanted, ROLE, "p"), ROLE, total), Resources())
    assert after_reserve.reserved(ROLE) == reserved_to(wanted, ROLE, "p")
    vol = volume(ROLE, "p", 300, "vol-1", "data")
    after_create = operations.apply(after_reserve, operations.conversion(create_volume(vol), ROLE, after_reserve),
                                    Resources())
    offer = corral.Offer(resources=(after_create.to_protos()))
    view = OfferView.of(offer, ROLE)
    assert list(view.volumes) == ["vol-1"]
    assert view.unreserved == Resources.parse("cpus:3;mem:768;disk:700;ports:[100-149,151-200]")
    assert view.reserved == reserved_to(Resources.parse("cpus:1;mem:256;ports:[150-150]"), ROLE, "p")
    resources = after_create
    for op in view.releasing():
        resources = operations.apply(resources, operations.conversion(op, ROLE, resources), Resources())
    assert resources == total  # everything given back


def test_releasing_keeps_the_volumes_asked_for_and_other_roles_are_not_ours():
    mine = volume(ROLE, "", 100, "keep", "data")
    other = volume("other", "", 100, "theirs", "data")
    view = OfferView.of([mine, other, *reserved_to(Resources.parse("cpus:1"), ROLE).to_protos()], ROLE)
    assert list(view.volumes) == ["keep"]
    ops = view.releasing(keep_volumes=["keep"])
    assert [corral.Offer.Operation.Type.Name(op.type) for op in ops] == ["UNRESERVE"]
    assert ops[0] == unreserve(reserved_to(Resources.parse("cpus:1"), ROLE))
