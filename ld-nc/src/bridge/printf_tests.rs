use super::*;

fn sig(s: &str) -> Signature {
    abi::parse_sig(s).expect("signature")
}

fn bits(v: f64) -> u64 {
    v.to_bits()
}

/// An x86-64 caller's view: integer registers, XMM registers and stack words, as a variadic call
/// of a function with `nfixed` integer parameters leaves them.
struct Caller {
    int: [u64; 6],
    xmm: [[u64; 2]; 8],
    stack: Vec<u64>,
}

impl Caller {
    fn gather(&self, nfixed: usize, types: &[Ty]) -> Vec<Arg> {
        let save = save_area(&self.int, &self.xmm);
        let list = call_list(&save, nfixed, self.stack.as_ptr() as u64);
        // SAFETY: the areas are this test's arrays, holding every argument the types name.
        unsafe { gather(list, types) }.expect("gather")
    }
}

#[test]
fn variadic_arguments_are_found_by_class_then_on_the_stack() {
    // printf(fmt, 20 alternating ints and doubles): the ints after fmt take RSI..R9 (5), the
    // doubles XMM0-7 (8); the rest go on the stack in argument order.
    let mut c = Caller { int: [0x1000, 1, 2, 3, 4, 5], xmm: [[0, 0]; 8], stack: Vec::new() };
    for (i, x) in c.xmm.iter_mut().enumerate() {
        *x = [bits(0.5 + i as f64), 0xdead];
    }
    let mut types = Vec::new();
    let mut want = Vec::new();
    for k in 0..10u64 {
        types.push(Ty::I(32));
        types.push(Ty::F64);
        if k < 5 {
            want.push(Arg::Word(k + 1));
        } else {
            c.stack.push(0xffff_ffff_0000_0000 | (k + 1)); // junk above an int's 32 bits
            want.push(Arg::Word(k + 1));
        }
        if k < 8 {
            want.push(Arg::Word(bits(0.5 + k as f64)));
        } else {
            c.stack.push(bits(100.0 + k as f64));
            want.push(Arg::Word(bits(100.0 + k as f64)));
        }
    }
    assert_eq!(c.gather(1, &types), want);
    // The stack holds the overflow of both classes in argument order: ints 6-9, the ninth
    // double, int 10, the tenth double.
    assert_eq!(c.stack[4], bits(108.0));
}

#[test]
fn int_arguments_are_sign_extended_from_32_bits_and_64_bit_ones_kept() {
    let c = Caller { int: [0, 0, 0xaaaa_bbbb_8000_0000, 7, u64::MAX - 1, 0x1234_5678_9abc_def0], xmm: [[0; 2]; 8], stack: vec![] };
    assert_eq!(
        c.gather(2, &[Ty::I(32), Ty::U(32), Ty::I(64), Ty::Ptr]),
        vec![Arg::Word(0xffff_ffff_8000_0000), Arg::Word(7), Arg::Word(u64::MAX - 1), Arg::Word(0x1234_5678_9abc_def0)]
    );
}

#[test]
fn long_double_is_read_from_the_stack_16_aligned_and_converted() {
    // printf(fmt, int, long double, int): the long double is memory class, the ints registers.
    let one = [0u8, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]; // 1.0 as x87 extended
    let mut w = [0u8; 16];
    w[..10].copy_from_slice(&one);
    let lo = u64::from_le_bytes(w[..8].try_into().expect("8"));
    let hi = u64::from_le_bytes(w[8..].try_into().expect("8"));
    // Keep the stack 16-aligned as the ABI does: a Vec<u128> backs it.
    let store: Vec<u128> = vec![u128::from(lo) | u128::from(hi) << 64, 9];
    let c = Caller { int: [0, 1, 2, 0, 0, 0], xmm: [[0; 2]; 8], stack: vec![] };
    let save = save_area(&c.int, &c.xmm);
    let list = call_list(&save, 1, store.as_ptr() as u64);
    // SAFETY: the areas are this test's arrays.
    let got = unsafe { gather(list, &[Ty::I(32), Ty::LongDouble, Ty::I(32), Ty::LongDouble]) };
    let quad_one = abi::ldouble::f80_to_f128(one);
    assert_eq!(got.expect("gather")[..3], [Arg::Word(1), Arg::Quad(quad_one), Arg::Word(2)]);
}

#[test]
fn a_guest_va_list_part_way_through_is_walked_from_where_it_stands() {
    // A wrapper consumed one int by va_arg before passing the list on.
    let save = save_area(&[0, 10, 11, 12, 13, 14], &[[bits(2.5), 0], [bits(3.5), 0], [0; 2], [0; 2], [0; 2], [0; 2], [0; 2], [0; 2]]);
    let stack = [15u64, bits(4.5)];
    let list = GuestVaList { gp_offset: 16, fp_offset: 48 + 16, overflow_arg_area: stack.as_ptr() as u64, reg_save_area: save.as_ptr() as u64 };
    let types = [Ty::I(32), Ty::F64, Ty::I(32), Ty::I(32), Ty::I(32), Ty::I(32)];
    // SAFETY: the areas are this test's arrays.
    let got = unsafe { gather(list, &types) }.expect("gather");
    assert_eq!(got, [11, bits(3.5), 12, 13, 14, 15].map(Arg::Word));
}

#[test]
fn riscv_slots_put_long_double_at_an_even_index() {
    let q = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    // printf(fmt, int, long double): fmt in a0, int a1, the pair in a2/a3.
    let s = Slots::new(&[0x1000], &[Arg::Word(5), Arg::Quad(q)]);
    assert_eq!((0..s.len()).map(|i| s.get(i).expect("slot")).collect::<Vec<_>>(), [0x1000, 5, q as u64, (q >> 64) as u64]);
    // printf(fmt, long double): a1 is skipped.
    let s = Slots::new(&[0x1000], &[Arg::Quad(q)]);
    assert_eq!((0..s.len()).map(|i| s.get(i).expect("slot")).collect::<Vec<_>>(), [0x1000, 0, q as u64, (q >> 64) as u64]);
    assert_eq!(s.as_ptr() as usize % 16, 0);
}

#[test]
fn a_va_list_area_matches_the_abi_layout() {
    let types = [Ty::I(32), Ty::LongDouble, Ty::F64, Ty::Ptr, Ty::LongDouble];
    let args = [Arg::Word(1), Arg::Quad(2), Arg::Word(3), Arg::Word(4), Arg::Quad(5)];
    let s = Slots::new(&[], &args);
    let (offs, total) = abi::valist::host_area_layout(&types).expect("layout");
    for (off, a) in offs.iter().zip(args) {
        let i = *off as usize / 8;
        match a {
            Arg::Word(w) => assert_eq!(s.get(i), Some(w)),
            Arg::Quad(q) => assert_eq!((s.get(i), s.get(i + 1)), (Some(q as u64), Some((q >> 64) as u64))),
        }
    }
    assert_eq!(s.len().next_multiple_of(2) * 8, total as usize);
}

#[test]
fn padding_fills_the_register_slots() {
    let mut s = Slots::new(&[1, 2], &[]);
    s.pad_to(8);
    assert_eq!(s.len(), 8);
    assert_eq!(s.get(7), Some(0));
    assert_eq!(s.get(8), None);
}

#[test]
fn fixed_arguments_follow_lp64d_extension() {
    assert_eq!(fixed_arg(0xdead_beef_ffff_fffe, &Ty::I(32)), u64::MAX - 1);
    assert_eq!(fixed_arg(0xdead_beef_8000_0000, &Ty::U(32)), 0xffff_ffff_8000_0000);
    assert_eq!(fixed_arg(0x1_0000_00ff, &Ty::U(8)), 0xff);
    assert_eq!(fixed_arg(0xdead_beef_0000_0001, &Ty::Ptr), 0xdead_beef_0000_0001);
}

#[test]
fn records_are_described_from_their_signatures() {
    let d = describe("snprintf", &sig("(p,u64,p,...printf3)->i32"), 42).expect("snprintf");
    assert_eq!((d.fmt, d.family, d.source, d.real), (2, Family::Printf, Source::Varargs, 42));
    let d = describe("vfprintf", &sig("(p,p,vl)vprintf2->i32"), 1).expect("vfprintf");
    assert_eq!((d.fmt, d.source), (1, Source::VaList(2)));
    let d = describe("__isoc99_sscanf", &sig("(p,p,...scanf2)->i32"), 1).expect("sscanf");
    assert_eq!(d.family, Family::Scanf);
    assert!(describe("strfmon", &sig("(p,u64,p,...printf3)->i64"), 1).is_err());
    assert!(describe("f", &sig("(p,f64,...printf1)->i32"), 1).expect_err("fp").contains("f64"));
    assert!(describe("f", &sig("(i32,i32,i32,i32,i32,i32,p,...printf7)->i32"), 1).is_err());
}

#[test]
fn only_format_classes_apply() {
    let class = |c: &[Conversion]| Class::Convert(c.to_vec());
    assert!(applies(&class(&[Conversion::VarargsPrintf])));
    assert!(applies(&class(&[Conversion::VaList])));
    assert!(!applies(&class(&[Conversion::VarargsPrintf, Conversion::Callback])));
    assert!(!applies(&Class::Pass));
}

#[test]
fn a_bad_format_is_named_in_the_message() {
    let d = describe("printf", &sig("(p,...printf1)->i32"), 1).expect("printf");
    let m = types_of(&d, b"x=%k\n").expect_err("bad");
    assert!(m.contains("\"x=%k\\n\"") && m.contains("unknown conversion at byte 2"), "{m}");
    assert_eq!(types_of(&d, b"%d %Lf %n").expect("ok"), [Ty::I(32), Ty::LongDouble, Ty::Ptr]);
}

#[test]
fn scanf_long_doubles_go_through_binary128_temporaries() {
    let one: abi::ldouble::F80 = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f];
    let mut guest_ld = [0u8; 16];
    guest_ld[..10].copy_from_slice(&one);
    let mut other = 5u64;
    let mut args = [Arg::Word(&mut other as *mut u64 as u64), Arg::Word(guest_ld.as_mut_ptr() as u64)];
    // SAFETY: the second argument points at a long double of this test.
    let t = unsafe { redirect_long_doubles(b"%d %Lf", &mut args) }.expect("targets");
    assert_eq!(t.len(), 1);
    assert_eq!(args[0], Arg::Word(&mut other as *mut u64 as u64));
    let Arg::Word(tmp) = args[1] else { panic!("word") };
    // The temporary holds the guest value as binary128; a native store of 2.0 there...
    // SAFETY: the temporary is 16 bytes, alive in `t`.
    let held = unsafe { (tmp as *const u128).read() };
    assert_eq!(held, abi::ldouble::f80_to_f128(one));
    // SAFETY: as above.
    unsafe { (tmp as *mut u128).write(held + (1u128 << 112)) };
    // ...reaches the guest as x87 2.0.
    // SAFETY: the target is this test's array.
    unsafe { store_long_doubles(&t) };
    assert_eq!(guest_ld[..10], [0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0x40]);
}

#[test]
fn stack_words_count_what_the_format_puts_on_the_x86_stack() {
    let printf = describe("printf", &sig("(p,...printf1)->i32"), 1).expect("printf");
    let words = |d: &FmtDesc, f: &[u8]| stack_words(d, &types_of(d, f).expect("types")).expect("words");
    assert_eq!(words(&printf, b"%d %d %d %d %d"), 0);
    assert_eq!(words(&printf, b"%d %d %d %d %d %d %s"), 2);
    assert_eq!(words(&printf, b"%f %f %f %f %f %f %f %f %f"), 1);
    // A long double is two words at a 16-aligned offset.
    assert_eq!(words(&printf, b"%d %d %d %d %d %d %Lf"), 4);
    let snprintf = describe("__snprintf_chk", &sig("(p,u64,i32,u64,p,...printf5)->i32"), 1).expect("chk");
    assert_eq!(words(&snprintf, b"%d %d"), 1);
    let vprintf = describe("vprintf", &sig("(p,vl)vprintf1->i32"), 1).expect("vprintf");
    assert_eq!(words(&vprintf, b"%d %d %d %d %d %d %d %d"), 0);
}
