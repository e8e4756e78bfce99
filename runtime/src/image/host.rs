//! TEMPORARY STUB (being replaced): busybox-only image.
use super::{Image, ImageConfig, ImageError, ImageStore};
pub fn build_host_image(store: &ImageStore, name: &str, _bins: &[String]) -> Result<Image, ImageError> {
    let staging = store.staging_dir(name)?;
    let root = staging.join("rootfs");
    let run = |args: &[&str]| std::process::Command::new(args[0]).args(&args[1..]).status().unwrap();
    run(&["sh", "-c", &format!("mkdir -p {r}/bin {r}/usr/bin {r}/sbin {r}/usr/sbin {r}/etc {r}/tmp {r}/root {r}/home {r}/proc {r}/sys {r}/dev && cp /bin/busybox {r}/bin/ && for a in $(/bin/busybox --list-full | grep -v bin/busybox); do ln -sf /bin/busybox {r}/$a 2>/dev/null; done", r = root.display())]);
    let config = ImageConfig { env: vec![format!("PATH={}", crate::spec::DEFAULT_PATH)], cmd: vec!["/bin/sh".into()], working_dir: "/".into(), created: crate::status::now_secs(), size: 0 };
    store.publish(name, &staging, &config)
}
